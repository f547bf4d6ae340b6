"""One function per parser: bytes in, and only the parser's documented errors out.

Each target raises AssertionError (a finding) when a parser fails in an unexpected way,
e.g. an IndexError from a malformed frame, or a record that breaks the model's ranges.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.gb26875.frame import decode_frame
from drivers.gb26875.objects import ComponentAddress, UnitError
from drivers.gb26875.panel_map import PanelMap, Place
from drivers.gb26875.stream import FrameStream
from drivers.gb26875.stream import Rejected as NotAFrame
from drivers.gb26875.units import Unit, decode_unit
from drivers.json_map import JsonMap, JsonMapper, MalformedJsonError, parse_json
from drivers.modbus import ModbusMap
from drivers.modbus.frames import classify_rtu, classify_tcp, rtu_answer_length
from drivers.modbus.planner import plan_map
from drivers.modbus.values import decode_point
from drivers.profile import BUILTIN, ProfileLibrary, profile_from_toml
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames import SerialFormat
from drivers.serial_frames.decode import FrameDecoder
from drivers.serial_frames.scanner import FrameScanner, Rejected
from drivers.zigbee2mqtt import BadAvailabilityError, parse_availability
from fuzz.mqtt_dispatch import mqtt_dispatch
from fuzz.mqtt_stream import mqtt_stream
from fuzz.terminals import dahua_stream, hikvision_push
from gateway.config_file import parse_config
from gateway.core.kinds import MODELS
from gateway.core.model import Reading, decode, encode
from gateway.core.problems import ConfigError, parse_toml
from rules.loader import pack_from_text
from rules.problems import RuleError

LIBRARY = ProfileLibrary()
KEY = Pseudonymiser(b"fuzzing-key-0123456789abcdef")


def _check_reading(reading: Reading | None) -> None:
    if reading is None:
        return
    specs = MODELS[reading.kind].readings
    for name, value in reading.values.items():
        assert isinstance(value, bool | int | float), (name, value)
        assert specs[name].accepts(float(value)), (name, value)
    assert decode(encode(reading)) == reading


def _profiles(transport: str) -> list[Any]:
    return [LIBRARY.get(n) for n in LIBRARY.names() if LIBRARY.get(n).transport == transport]


def json_payload(data: bytes) -> None:
    """MQTT ingress and HTTP push bodies through every JSON profile's mapping."""
    try:
        body = parse_json(data)
    except MalformedJsonError:
        return  # rejected as malformed_json by the drivers
    for profile in _profiles("json"):
        assert isinstance(profile.mapping, JsonMap)
        decoded = JsonMapper(profile.mapping, profile.kind, "d1", KEY).decode(body, 1)
        _check_reading(decoded.reading)
        for event in decoded.events:
            assert event.type in MODELS[profile.kind].events
            card = event.fields.get("card")
            assert card is None or str(card).startswith("p:")


def serial_stream(data: bytes) -> None:
    """Any byte stream through every serial profile's scanner and decoder."""
    for profile in _profiles("serial"):
        fmt = profile.mapping
        assert isinstance(fmt, SerialFormat)
        scanner = FrameScanner(fmt)
        decoder = FrameDecoder(fmt, profile.kind, "d1", KEY)
        half = len(data) // 2
        scanned = scanner.feed(data[:half], 0.0) + scanner.feed(data[half:], 0.1)
        scanned += scanner.expire(100.0) + scanner.close()
        for item in scanned:
            if isinstance(item, Rejected):
                assert item.reason
                continue
            decoded = decoder.decode(item, 1)
            _check_reading(decoded.reading)


def modbus_answer(data: bytes) -> None:
    """Any bytes as an RTU or TCP answer, and any register contents through every map."""
    unit = data[0] if data else 1
    function = data[1] if len(data) > 1 else 3
    rtu_answer_length(data)
    reason, detail = classify_rtu(data, unit, function)
    assert isinstance(reason, str) and isinstance(detail, str)
    reason, detail = classify_tcp(data, unit)
    assert isinstance(reason, str) and isinstance(detail, str)
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2)]
    for profile in _profiles("modbus"):
        mapping = profile.mapping
        assert isinstance(mapping, ModbusMap)
        plan = plan_map(mapping)
        for block in plan.full:
            registers = (words * (block.count // max(len(words), 1) + 1))[:block.count] \
                if words else [0] * block.count
            bits = [bool(w & 1) for w in registers]
            for name in block.points:
                point = mapping.points[name]
                # a float NaN or infinity is a ValueError: rejected as decode by the driver
                with contextlib.suppress(ValueError):
                    decode_point(point, block.address, bits if point.on_bits else registers)


def gb26875_stream(data: bytes) -> None:
    """Any byte stream on a GB/T 26875.3 connection: frames, their units, or a reason."""
    stream = FrameStream()
    half = len(data) // 2
    items = stream.feed(data[:half]) + stream.feed(data[half:]) + stream.close()
    for item in items:
        if isinstance(item, NotAFrame):
            assert item.reason
            assert item.detail
            continue
        raw = item.encode()
        assert decode_frame(raw) == item
        if not item.data:
            continue  # a heartbeat
        try:
            unit = decode_unit(item.data)
        except UnitError as exc:
            assert exc.reason
            continue
        _check_panel_map(unit)
        try:
            again = unit.encode()
        except ValueError:
            continue  # a garbled text (U+FFFD is 4 bytes in GB 18030) may not fit again
        assert decode_unit(again) == unit
    assert stream.dropped <= len(data)


_PANEL = PanelMap("panel", {(1, ComponentAddress(3, 17)): Place("d1", "3", 2, "east")})


def _check_panel_map(unit: Unit) -> None:
    """What any unit becomes: events of the smoke model, on the detector or its panel."""
    decoded = _PANEL.decode(unit, 1)
    for event in decoded.events:
        assert event.type in MODELS[event.kind].events
        assert event.device in ("panel", "d1")
        assert decode(encode(event)) == event
    for reading in decoded.readings:
        assert reading.device == "d1"
        _check_reading(reading)
    for reason, detail in decoded.problems:
        assert reason == "out_of_range"
        assert detail
    _PANEL.remember(decoded)


_FUZZ_TOML = Path("/nonexistent/fuzz.toml")


def config_file(data: bytes) -> None:
    """Any text as the gateway's TOML configuration."""
    try:
        raw = parse_toml(data.decode("utf-8", "replace"), _FUZZ_TOML)
    except ConfigError as exc:
        assert exc.problems
        return
    try:
        parse_config(raw, _FUZZ_TOML, {})
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.path and problem.message


def rule_file(data: bytes) -> None:
    """Any text as a rule file: a pack, or RuleError naming every problem with its line."""
    try:
        pack = pack_from_text(data.decode("utf-8", "replace"))
    except RuleError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.message
        return
    for rule in pack.rules:
        assert rule.id


def availability(data: bytes) -> None:
    """Any bytes on a zigbee2mqtt availability topic: online, offline, or refused."""
    try:
        online = parse_availability(data)
    except BadAvailabilityError as exc:
        assert str(exc)
        return
    assert isinstance(online, bool)


_FUZZ_PROFILE = Path("/nonexistent/fuzz-profile.toml")


def profile_file(data: bytes) -> None:
    """Any text as a profile, which may include the shipped pieces (and name missing ones
    or itself)."""
    try:
        raw = parse_toml(data.decode("utf-8", "replace"), _FUZZ_PROFILE)
        profile = profile_from_toml(raw, _FUZZ_PROFILE, [BUILTIN])
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.path and problem.message
        return
    assert profile.name == _FUZZ_PROFILE.stem


_ONENET_KEY = "A1b2C3d4E5f6G7h8"


def onenet_push(data: bytes) -> None:
    """Any body as a OneNET push, its msg in plaintext and in secure mode, through the
    OneNET profiles."""
    from drivers.onenet.message import MalformedPushError, Notify, parse_envelope, parse_message
    from drivers.onenet.signature import UndecryptableError, decrypt, verify

    texts = [data.decode("utf-8", "replace")]
    try:
        envelope = parse_envelope(data)
    except MalformedPushError as exc:
        assert str(exc)
    else:
        assert isinstance(verify("token-123", envelope.nonce, envelope.msg,
                                 envelope.signature), bool)
        texts.append(envelope.msg)
        with contextlib.suppress(UndecryptableError):
            texts.append(decrypt(_ONENET_KEY, envelope.msg))
    for text in texts:
        try:
            message = parse_message(text)
        except MalformedPushError as exc:
            assert str(exc)
            continue
        if isinstance(message, Notify):
            for profile in _profiles("json"):
                if profile.name.startswith("onenet-"):
                    assert isinstance(profile.mapping, JsonMap)
                    mapper = JsonMapper(profile.mapping, profile.kind, "d1", KEY)
                    _check_reading(mapper.decode(message.body, 1).reading)


def ctwing_push(data: bytes) -> None:
    """Any body as a CTWing push, through the CTWing profiles (json and byte layout)."""
    from drivers.ctwing.appdata import AppData
    from drivers.ctwing.message import MalformedPushError, Uplink, parse_message

    try:
        message = parse_message(data)
    except MalformedPushError as exc:
        assert str(exc)
        return
    if not isinstance(message, Uplink):
        return
    for name in LIBRARY.names():
        profile = LIBRARY.get(name)
        if not name.startswith("ctwing-"):
            continue
        if isinstance(profile.mapping, JsonMap):
            decoded = JsonMapper(profile.mapping, profile.kind, "d1", KEY).decode(message.body, 1)
        elif message.app_data is not None:
            assert isinstance(profile.mapping, SerialFormat)
            decoded = AppData(profile.mapping, profile.kind, "d1", KEY).decode(
                message.app_data, 1)
        else:
            continue
        _check_reading(decoded.reading)
        assert all(reason for reason, _ in decoded.problems)


def sharing_policy(data: bytes) -> None:
    """Any text as a sharing policy: a policy that shapes records without failing, or
    PolicyError naming every problem with its line."""
    from gateway.core.config import Location
    from gateway.core.kinds import make_event
    from gateway.core.model import DeviceKind
    from gateway.upstreams.policy import PolicyError, policy_from_text
    from gateway.upstreams.shaping import Shaper

    try:
        policy = policy_from_text(data.decode("utf-8", "replace"))
    except PolicyError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.message
        return
    shaper = Shaper("fuzz", policy, "c1", b"fuzz-pseudonym-key", {
        "d": Location(building="3", unit="1", floor=2)}.get)
    for kind in DeviceKind:
        for seq, type_ in enumerate(sorted(MODELS[kind].events)[:3], start=1):
            shaper.shape(seq, make_event(kind, "d", type_, 1_767_225_600_000))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "json_payload": json_payload,
    "serial_stream": serial_stream,
    "modbus_answer": modbus_answer,
    "config_file": config_file,
    "rule_file": rule_file,
    "sharing_policy": sharing_policy,
    "mqtt_dispatch": mqtt_dispatch,
    "mqtt_stream": mqtt_stream,
    "availability": availability,
    "profile_file": profile_file,
    "onenet_push": onenet_push,
    "ctwing_push": ctwing_push,
    "gb26875_stream": gb26875_stream,
    "hikvision_push": hikvision_push,
    "dahua_stream": dahua_stream,
}
