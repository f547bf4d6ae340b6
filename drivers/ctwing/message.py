"""A CTWing subscription push, parsed.

The formats, from CTWing's subscription push documentation (订阅推送, 消息格式) and
captures of real pushes:

- `dataReport`: `deviceId`, `productId`, `IMEI`, `timestamp`, `upPacketSN`, `upDataSN`
  (-1 or "" when the protocol has none), `payload`: `{"APPdata": "<Base64>"}` for a
  pass-through (透传) device, else the decoded data object (LwM2M profile devices put it
  under `payload.serviceData`);
- `eventReport`: `eventType` (1 info, 2 warning, 3 fault) and `eventContent`;
- `deviceOnlineOfflineReport`: `eventType` 1 online, 0 offline;
- others (commandResponse, deviceDataChanged, ...) the gateway does not use.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from drivers.json_map import shown
from drivers.platform_message import MalformedPushError as MalformedPushError
from drivers.platform_message import Other as Other
from drivers.platform_message import json_object

MAX_APPDATA = 1024  # NB-IoT uplinks are a few hundred bytes at most


@dataclass(frozen=True, slots=True)
class DeviceName:
    device_id: str | None
    imei: str | None

    def __str__(self) -> str:
        return f"deviceId={self.device_id}, IMEI={self.imei}"


@dataclass(frozen=True, slots=True)
class Uplink:
    """A dataReport or an eventReport."""

    message_type: str
    device: DeviceName
    body: dict[str, Any]  # the whole message: json profiles map paths into it
    app_data: bytes | None  # a pass-through device's own bytes
    packet: str | None  # upPacketSN/upDataSN, when the protocol numbers its packets
    timestamp: int | None


@dataclass(frozen=True, slots=True)
class OnlineOffline:
    device: DeviceName
    online: bool


Message = Uplink | OnlineOffline | Other


def parse_message(body: bytes) -> Message:
    raw = json_object(body, "the body")
    kind = raw.get("messageType")
    if not isinstance(kind, str):
        raise MalformedPushError(f"messageType={shown(kind)} is not a message type")
    if kind not in ("dataReport", "eventReport", "deviceOnlineOfflineReport"):
        return Other(kind)
    device = DeviceName(_text(raw.get("deviceId")),
                        _text(raw.get("IMEI", raw.get("imei"))))
    if device.device_id is None and device.imei is None:
        raise MalformedPushError(f"a {kind} without deviceId or IMEI")
    if kind == "deviceOnlineOfflineReport":
        state = raw.get("eventType")
        if state not in (0, 1) or isinstance(state, bool):
            raise MalformedPushError(f"deviceOnlineOfflineReport eventType={shown(state)} is "
                                     "neither 1 (online) nor 0 (offline)")
        return OnlineOffline(device, state == 1)
    app_data = None
    if kind == "dataReport":
        payload = raw.get("payload")
        if not isinstance(payload, dict):
            raise MalformedPushError("a dataReport without a payload object")
        if "APPdata" in payload:
            app_data = _app_data(payload["APPdata"])
    elif not isinstance(raw.get("eventContent", {}), dict):
        raise MalformedPushError("eventReport eventContent is not an object")
    timestamp = raw.get("timestamp")
    return Uplink(kind, device, raw, app_data, _packet(raw),
                  timestamp if isinstance(timestamp, int) else None)


def _app_data(value: Any) -> bytes:
    if not isinstance(value, str):
        raise MalformedPushError(f"payload.APPdata={shown(value)} is not Base64 text")
    if len(value) > (MAX_APPDATA * 4) // 3 + 4:
        raise MalformedPushError(f"payload.APPdata is longer than {MAX_APPDATA} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedPushError(f"payload.APPdata is not Base64: {exc}") from None


def _packet(raw: dict[str, Any]) -> str | None:
    numbers = [raw.get("upPacketSN"), raw.get("upDataSN")]
    if all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        return f"{numbers[0]}/{numbers[1]}"
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    # "undefined" is what the platform writes for an IMEI or IMSI it does not have
    return value if isinstance(value, str) and value and value != "undefined" else None
