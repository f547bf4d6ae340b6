"""A OneNET Studio push, parsed: the envelope, then the message it carries.

The envelope (数据推送, "消息推送"): {"msg": "<JSON text, or its ciphertext>", "nonce": "...",
"signature": "...", "time": 1591340648197, "id": "3799902"}.

The message (规则引擎 "消息源格式"): `messageType` "notify" (thing-model data of a device:
`notifyType` "property" or "event", `data.params.<identifier>.value`, with `imei` for LwM2M
devices), "lifeCycle" (`data.status` "online" / "offline"), and others ("reply",
"sceneLog", "lbsAndWifi") that the gateway does not use. Every message names its device by
`productId` and `deviceName`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.json_map import shown
from drivers.platform_message import MalformedPushError as MalformedPushError
from drivers.platform_message import Other as Other
from drivers.platform_message import json_object


@dataclass(frozen=True, slots=True)
class Envelope:
    msg: str
    nonce: str
    signature: str
    id: str
    time: int | None


@dataclass(frozen=True, slots=True)
class Device:
    """How a message names its device."""

    product_id: str | None
    device_name: str | None
    imei: str | None

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in (("productId", self.product_id),
                                          ("deviceName", self.device_name),
                                          ("imei", self.imei)) if v]
        return ", ".join(parts) or "no device named"


@dataclass(frozen=True, slots=True)
class Notify:
    device: Device
    body: dict[str, Any]  # the whole message: profiles map paths into it


@dataclass(frozen=True, slots=True)
class LifeCycle:
    device: Device
    online: bool


Message = Notify | LifeCycle | Other


def parse_envelope(body: bytes) -> Envelope:
    raw = json_object(body, "the body")
    for key in ("msg", "nonce", "signature"):
        if not isinstance(raw.get(key), str):
            raise MalformedPushError(f"{key} is missing or not a string "
                                     "(a push is {msg, nonce, signature, time, id})")
    ident = raw.get("id")
    if not isinstance(ident, str | int) or isinstance(ident, bool) or ident == "":
        raise MalformedPushError(f"id={shown(ident)} is not a message id")
    time = raw.get("time")
    return Envelope(raw["msg"], raw["nonce"], raw["signature"], str(ident),
                    time if isinstance(time, int) and not isinstance(time, bool) else None)


def parse_message(text: str) -> Message:
    raw = json_object(text, "msg")
    kind = raw.get("messageType")
    if not isinstance(kind, str):
        raise MalformedPushError(f"msg.messageType={shown(kind)} is not a message type")
    if kind not in ("notify", "lifeCycle"):
        return Other(kind)
    device = Device(_text(raw, "productId"), _text(raw, "deviceName"), _text(raw, "imei"))
    if device.device_name is None and device.imei is None:
        raise MalformedPushError(f"a {kind} message without deviceName or imei")
    if kind == "notify":
        if not isinstance(raw.get("data"), dict):
            raise MalformedPushError("a notify message without a data object")
        return Notify(device, raw)
    data = raw.get("data")
    status = data.get("status") if isinstance(data, dict) else None
    if status not in ("online", "offline"):
        raise MalformedPushError(f"lifeCycle data.status={shown(status)} is neither online "
                                 "nor offline")
    return LifeCycle(device, status == "online")


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None
