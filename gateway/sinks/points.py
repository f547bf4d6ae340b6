"""Records as time-series points in InfluxDB line protocol (see docs/data-model.md).

Timestamps come from the record, never from the time of writing, and tags are fixed
per record, so writing the same record twice produces the same point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from gateway.core.config import Location
from gateway.core.model import (
    AckCommand,
    Alert,
    AlertState,
    DeviceEvent,
    DeviceKind,
    Notify,
    Reading,
    Record,
    Scalar,
    Severity,
)

ALERT_STATE_CODE = {AlertState.FIRING: 1, AlertState.ACKNOWLEDGED: 2, AlertState.RESOLVED: 3}
# the `online` field of the gateway's status events; a float, like every other event field
_STATUS_EVENTS = {"online": 1.0, "offline": 0.0}

FIELD_KEYS_KEPT = 10_000  # escaped field names remembered: names come from profiles
SERIES_KEPT = 10_000  # alert series remembered (one per rule and key)
FLOAT_TEXTS_KEPT = 1024  # float values remembered as text: forgotten all at once
_EXACT = 2**53  # integers up to this are floats exactly
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": " "})


class PointMaker:
    """Turns records into line protocol (millisecond precision) for one site."""

    def __init__(self, site: str, location: Callable[[str], Location | None],
                 tags: Mapping[str, str] | None = None) -> None:
        """`tags` are added to every point (the city hub's `district`)."""
        self._site = site
        self._location = location
        self._extra = dict(tags or {})
        # a reading's measurement and tags depend on its device alone: made once per device
        self._reading_series: dict[tuple[DeviceKind, str], str] = {}
        # an alert's measurement and tags depend on its rule and key: made once per pair
        self._alert_series: dict[tuple[str, Severity, DeviceKind, str], str] = {}
        # a field name as line protocol writes it (escaped, then `=`): made once per name
        self._field_keys: dict[str, str] = {}
        self._float_texts: dict[float, str] = {}  # a float value as line protocol writes it

    def line(self, record: Record) -> str | None:
        """The record's point, or None for records that have no point (acks, text-only)."""
        if type(record) is Reading:  # most records: the general checks below come after
            return self._reading_line(record)
        if isinstance(record, Alert):
            # one series per rule and key, whatever the alert and its state: an alert's id
            # or state as a tag would add series with every alert, for ever (see
            # docs/data-model.md); `since` tells one alert of a key from the next
            pair = (record.rule, record.severity, record.kind, record.device)
            series = self._alert_series.get(pair)
            if series is None:
                series = _series("sc_alert", self._tags(
                    record, {"rule": record.rule, "severity": record.severity.value}))
                if len(self._alert_series) < SERIES_KEPT:
                    self._alert_series[pair] = series
            # the fields in `_fields`' order; the value always a float: InfluxDB refuses a
            # field whose type changes between points
            value = (f",value={float(_number(record.value))!r}" if _numeric(record.value)
                     else "")
            return (f"{series} since={record.since}i,"
                    f"state_code={ALERT_STATE_CODE[record.state]}i{value} {record.ts}")
        if isinstance(record, DeviceEvent):
            measurement = "sc_event"
            tags = {"type": record.type, "class": record.cls.value}
            fields: dict[str, int | float] = {"count": 1}
            # floats, so a field never changes type between points (InfluxDB refuses that)
            fields.update({k: float(_number(v)) for k, v in record.fields.items()
                           if _numeric(v)})
            if record.type in _STATUS_EVENTS:
                # a tag cannot be last()-ed: the device's current status needs a field
                fields["online"] = _STATUS_EVENTS[record.type]
        elif isinstance(record, Reading):
            return self._reading_line(record)
        else:  # acks and notification intents are commands, not measurements
            assert isinstance(record, AckCommand | Notify)
            return None
        return f"{_series(measurement, self._tags(record, tags))} {_fields(fields)} {record.ts}"

    def _reading_line(self, record: Reading) -> str | None:
        # the v2 write API of VictoriaMetrics keeps numeric fields only; text stays on MQTT
        field_part = self._reading_fields(record.values)
        if not field_part:
            return None
        key = (record.kind, record.device)  # the member: `.value` is a slow property
        series = self._reading_series.get(key)
        if series is None:
            series = _series(f"sc_{record.kind.value}", self._tags(record, {}))
            self._reading_series[key] = series
        return f"{series} {field_part} {record.ts}"

    def _reading_fields(self, values: dict[str, Scalar]) -> str:
        """A reading's numeric values as line protocol fields, every one a float (as
        `_fields` writes them), sorted; "" when none is numeric."""
        keys = self._field_keys
        texts = self._float_texts
        parts = []
        for name in sorted(values):
            value = values[name]
            # the common types first, without the general checks (which cost a reading
            # a microsecond): a float that is not finite has no point; nan - nan is nan
            if type(value) is float:
                text = texts.get(value)  # a device's values repeat: the text is remembered
                if text is None:
                    if value - value != 0.0:
                        continue
                    text = repr(value)
                    if value:  # not a zero: 0.0 and -0.0 are one key
                        if len(texts) >= FLOAT_TEXTS_KEPT:
                            texts.clear()
                        texts[value] = text
            elif type(value) is bool:
                text = "1.0" if value else "0.0"
            elif type(value) is int:
                # as repr(float(value)) writes it, exact below 2**53 (and without exponent)
                text = f"{value}.0" if -_EXACT < value < _EXACT else repr(float(value))
            elif _numeric(value):
                text = repr(float(_number(value)))
            else:
                continue
            key = keys.get(name)
            if key is None:
                key = f"{name.translate(_KEY_ESCAPES)}="
                if len(keys) < FIELD_KEYS_KEPT:
                    keys[name] = key
            parts.append(key + text)
        return ",".join(parts)

    def _tags(self, record: Alert | DeviceEvent | Reading, tags: dict[str, str]
              ) -> dict[str, str]:
        """`tags` with the ones every point has: site, kind, device and its location."""
        tags |= {"site": self._site, "kind": record.kind.value, "device": record.device}
        if self._extra:
            tags |= self._extra
        location = self._location(record.device)
        if location is not None:
            if location.building is not None:
                tags["building"] = location.building
            if location.unit is not None:
                tags["unit"] = location.unit
            if location.floor is not None:
                tags["floor"] = str(location.floor)
        return tags


def _series(measurement: str, tags: dict[str, str]) -> str:
    tag_part = "".join(
        f",{k.translate(_KEY_ESCAPES)}={v.translate(_KEY_ESCAPES)}"
        for k, v in sorted(tags.items()) if v
    )
    return f"{measurement.translate(_MEASUREMENT_ESCAPES)}{tag_part}"


def _fields(fields: dict[str, int | float]) -> str:
    return ",".join(
        f"{k.translate(_KEY_ESCAPES)}={v}i" if isinstance(v, int)
        else f"{k.translate(_KEY_ESCAPES)}={v!r}"
        for k, v in sorted(fields.items())
    )


def _numeric(value: Scalar | None) -> bool:
    return isinstance(value, bool | int | float) and math.isfinite(value)


def _number(value: Scalar | None) -> int | float:
    if isinstance(value, bool):
        return int(value)
    assert isinstance(value, int | float)
    return value
