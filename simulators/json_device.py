"""Payloads for any JSON profile, built by running its mapping backwards."""

from __future__ import annotations

from typing import Any

from drivers.json_map import JsonMap
from drivers.profile import Profile


class JsonPayloads:
    """Builds the JSON a device of `profile` would send for given readings and an event."""

    def __init__(self, profile: Profile) -> None:
        if not isinstance(profile.mapping, JsonMap):
            raise TypeError(f"profile {profile.name} is not a JSON profile")
        self.profile = profile
        self._map = profile.mapping
        self._state: dict[str, Any] = {}  # state-reporting devices repeat their last state

    def payload(self, readings: dict[str, float] | None = None, event: str | None = None,
                card: str | None = None, **raw: Any) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for path, value in self._state.items():
            _put(body, path, value)
        for name, value in (readings or {}).items():
            spec = next((r for r in self._map.readings if r.reading == name), None)
            if spec is None:
                raise KeyError(f"{self.profile.name} has no reading {name}")
            _put(body, spec.path, _raw_number((value - spec.offset) / spec.scale))
        if event is not None:
            path, value, stateful = self._event_source(event)
            _put(body, path, value)
            if stateful:
                self._state[path] = value
        if card is not None and self._map.card is not None:
            _put(body, self._map.card, card)
        for path, value in raw.items():
            _put(body, path, value)
        return body

    def reports(self, event: str) -> bool:
        """Whether the profile maps `event` (e.g. a `heartbeat`)."""
        try:
            self._event_source(event)
        except KeyError:
            return False
        return True

    def _event_source(self, event: str) -> tuple[str, Any, bool]:
        for e in self._map.events:
            if e.event == event:
                return e.path, e.equals, e.on_change
            for key, name in e.map.items():
                if name == event:
                    return e.path, _unkey(key), e.on_change
        raise KeyError(f"{self.profile.name} cannot report {event}")


def _put(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _raw_number(value: float) -> int | float:
    return round(value) if abs(value - round(value)) < 1e-9 else value


def _unkey(key: str) -> Any:
    if key in ("true", "false"):
        return key == "true"
    return int(key) if key.lstrip("-").isdigit() else key
