"""Property-based fuzzing of every parser (the same targets atheris runs for hours)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.mqtt_dispatch import message_bytes, mqtt_dispatch
from fuzz.mqtt_stream import mqtt_publishes, mqtt_stream, publish_stream
from fuzz.seeds import PATHOLOGICAL_CONFIG_FILES, PATHOLOGICAL_RULE_FILES, gb26875_seeds
from fuzz.targets import (
    availability,
    config_file,
    ctwing_push,
    gb26875_stream,
    json_payload,
    modbus_answer,
    onenet_push,
    profile_file,
    rule_file,
    serial_stream,
    sharing_policy,
)
from fuzz.terminals import dahua_stream, hikvision_push
from gateway.core.problems import ConfigError, parse_toml
from rules.loader import pack_from_text
from rules.problems import RuleError

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["event", "code", "card", "smoke", "battery", "data",
                                       "tilt", "action", "alarm", "temp_x10", "abnormal",
                                       "mask", "door_open", "holder", "person",
                                       "water_leak", "trouble", "test", "tamper",
                                       "battery_low", "linkquality", "state"]),
                      children, max_size=6),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=512))
def test_json_payload_bytes(data: bytes) -> None:
    json_payload(data)


@FUZZ
@given(json_values)
def test_json_payload_structured(value: object) -> None:
    json_payload(json.dumps(value, allow_nan=True).encode())


@FUZZ
@given(st.binary(max_size=512))
def test_serial_stream(data: bytes) -> None:
    serial_stream(data)


@FUZZ
@given(st.lists(st.sampled_from([b"\xaa\x55", b"\x0d", b"\x00", b"\x10", b"\x30", b"\xff"])
                | st.binary(max_size=8), max_size=40).map(b"".join))
def test_serial_stream_near_frames(data: bytes) -> None:
    serial_stream(data)


@FUZZ
@given(st.binary(max_size=300))
def test_modbus_answer(data: bytes) -> None:
    modbus_answer(data)


@FUZZ
@given(st.text(max_size=400))
def test_config_text(text: str) -> None:
    config_file(text.encode())


@FUZZ
@given(st.dictionaries(st.sampled_from(["site", "store", "broker", "devices", "journal",
                                        "buses", "http", "colour"]),
                       st.none() | st.integers() | st.text(max_size=10)
                       | st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)
                       | st.lists(st.dictionaries(st.sampled_from(
                           ["id", "kind", "transport", "gpio", "mqtt", "profile"]),
                           st.text(max_size=12), max_size=5), max_size=3),
                       max_size=8))
def test_config_structured(raw: dict[str, object]) -> None:
    import tomllib  # noqa: F401  (the target parses TOML text; build it from the dict)

    lines = []
    for key, value in raw.items():
        lines.append(f"{key} = {json.dumps(value)}" if not isinstance(value, (dict, list))
                     or (isinstance(value, list) and not value) else f"{key} = {_toml(value)}")
    config_file("\n".join(lines).encode())


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


RULE_WORDS = ["rules:", "  - id: r1", "    match: {kind: smoke, type: alarm}",
              "    match: {kind: manhole, type: reading}", "    condition: {field: tilt_deg,",
              " above: 10}", "    condition: \"tilt_deg > 10 and\"", "    for: 3s",
              "    for: -1s", "    clear: {type: alarm_cleared}", "    severity: critical",
              "    message: \"{device} {nope}\"", "    escalation: missing",
              "escalations:", "  e1:", "    steps:", "      - {after: 0s, notify: g}",
              "    key: building", "    count: {at_least: 2, within: 60s}", "\t", "- ", ":"]


@FUZZ
@given(st.lists(st.sampled_from(RULE_WORDS) | st.text(max_size=12), max_size=25)
       .map("\n".join))
def test_rule_file(text: str) -> None:
    rule_file(text.encode())


POLICY_WORDS = ["rules:", "  - id: p1", "    select: {records: [event], kind: [smoke]}",
                "    select: {records: [alert], rule: [elder.sos]}", "    select: {}",
                "    fields: [ts, device, type, body_temp_c]", "    pseudonymise: [device]",
                "    place: floor", "    round: 1m", "    delay: -1s",
                "    aggregate: {period: 1h, by: [building, type]}", "    basis: law",
                "    reference: x", "description: d", "\t", "- ", ":"]


@FUZZ
@given(st.lists(st.sampled_from(POLICY_WORDS) | st.text(max_size=12), max_size=25)
       .map("\n".join))
def test_sharing_policy(text: str) -> None:
    sharing_policy(text.encode())


def test_regression_problems_with_and_without_a_rule_id_on_one_line() -> None:
    # found by atheris: sorting such problems compared a rule id with None
    rule_file(
        b'rules:\n  - id: access.forced_open\n    match: {kind: access, '
        b'type: forceds, type: forced_open}\n    clear: {type: door_clo'
        b'sed}\n    severity: major\n    message: ")"\n    resolve_messag'
        b'e: _open}\n    clear: {type: door_closed}\n    severity: major'
        b'\n    message: ")"\n    resolve_message: rul'
    )


@pytest.mark.parametrize("seed", PATHOLOGICAL_RULE_FILES)
def test_regression_pathological_rule_files_are_refused(seed: bytes) -> None:
    # aliases, nesting, expressions, templates and numbers that once exhausted the gateway
    with pytest.raises(RuleError) as caught:
        pack_from_text(seed.decode())
    assert all(p.line >= 1 for p in caught.value.problems)
    rule_file(seed)


@pytest.mark.parametrize("seed", PATHOLOGICAL_CONFIG_FILES)
def test_regression_pathological_config_files_are_refused(seed: bytes) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_toml(seed.decode(), Path("gateway.toml"))
    assert caught.value.problems
    config_file(seed)


def test_regression_control_character_in_a_rule_file() -> None:
    # found by hypothesis: the YAML reader raised before the loader's error handling
    rule_file(b"rules:\n  - id: r1\x08\n")


def test_regression_invalid_utf8_inside_a_json_string() -> None:
    # found by atheris: msgspec raised UnicodeDecodeError, which escaped the drivers
    json_payload(b'"' + b"\xff" * 8 + b'"J\n')


@FUZZ
@given(st.binary(max_size=512))
def test_mqtt_dispatch_bytes(data: bytes) -> None:
    mqtt_dispatch(data)


topics = st.lists(st.sampled_from(["vendor", "sc", "a", "b", "dev", "alerts", "ack", "",
                                   "$SYS", "+", "#", "\u00e9"]), min_size=1, max_size=6)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 15), topics, st.binary(max_size=8),
                          st.integers(0, 65535)), max_size=30))
def test_mqtt_dispatch_structured(batch: list[tuple[int, list[str], bytes, int]]) -> None:
    """Topics made of the filters' own levels, so that most of them match something."""
    mqtt_dispatch(b"".join(message_bytes(flags, "/".join(levels).encode()[:255], payload, mid)
                           for flags, levels, payload, mid in batch))


# mqtt5 0.8 panics on a string that is not UTF-8 (the connection drops that message) and
# leaves Python's own decoding error behind as an unraisable one
CODEC_PANICS = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@CODEC_PANICS
@FUZZ
@given(st.binary(max_size=600))
def test_mqtt_stream_bytes(data: bytes) -> None:
    mqtt_stream(data)


mqtt_messages = st.lists(st.tuples(
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="+#\x00"),
            min_size=1, max_size=40),
    st.binary(max_size=300), st.integers(0, 1)), max_size=20)


@FUZZ
@given(mqtt_messages, st.integers(1, 400))
def test_mqtt_stream_publishes_cut_anywhere(messages: list[tuple[str, bytes, int]],
                                            cut: int) -> None:
    mqtt_publishes(messages, cut)


@CODEC_PANICS
@FUZZ
@given(mqtt_messages, st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_mqtt_stream_mutated(messages: list[tuple[str, bytes, int]], at: int,
                             patch: bytes) -> None:
    """Well-formed packets with a few bytes changed: a length, a flag, a topic."""
    stream = bytearray(publish_stream(messages))
    at = at % max(len(stream), 1)
    stream[at:at + len(patch)] = patch
    mqtt_stream(bytes([at % 256]) + bytes(stream))


def test_mqtt_stream_refuses_a_length_of_five_bytes() -> None:
    """A remaining length that never ends is a broken stream: the connection ends itself."""
    mqtt_stream(b"\x00" + b"\x30\xff\xff\xff\xff\x01" + b"x" * 10)


def test_mqtt_dispatch_checks_what_it_claims() -> None:
    """The target's oracle is paho's matcher: a topic under `$` is not one of `#`'s."""
    mqtt_dispatch(message_bytes(2, b"$SYS/broker/load", b"1", 7)
                  + message_bytes(2, b"vendor/x/sos", b"2", 8)
                  + message_bytes(10, b"vendor/x/sos", b"3", 9)  # later, then acknowledged
                  + message_bytes(14, b"a/1/2/b", b"4", 10))  # not journalled


@FUZZ
@given(st.binary(max_size=128) | st.sampled_from([b"online", b"offline"]).map(
    lambda s: b'{"state": "' + s + b'"}'))
def test_availability_bytes(data: bytes) -> None:
    availability(data)


profile_lines = st.sampled_from([
    'name = "fuzz-profile"', 'kind = "smoke"', 'kind = "elder_button"', 'transport = "json"',
    'include = ["zigbee/battery"]', 'include = ["zigbee/tamper", "zigbee/battery_low"]',
    'include = ["zigbee/nothing"]', 'include = ["../../etc/passwd"]', "include = [1]",
    'include = "zigbee/battery"', 'availability_topic = "{topic}/availability"',
    'availability_topic = "z2m/#"', 'models = ["HS1SA", "HS1SA"]', "heartbeat_s = 60",
    "[json]", 'readings = [{ path = "battery", reading = "battery_pct" }]',
    "readings = 3", 'events = [{ path = "smoke", equals = true, event = "alarm" }]',
    "[modbus]", "json = 1"])


@FUZZ
@given(st.lists(profile_lines | st.text(max_size=30), max_size=10).map("\n".join))
def test_profile_file(text: str) -> None:
    profile_file(text.encode())
push_words = st.sampled_from([
    b'"messageType":', b'"notify"', b'"lifeCycle"', b'"dataReport"', b'"eventReport"',
    b'"deviceOnlineOfflineReport"', b'"deviceName":"smoke-0001"', b'"imei":', b'"IMEI":',
    b'"deviceId":"x"', b'"payload":', b'"APPdata":"aAUBAAAAAAAA"', b'"serviceData":',
    b'"data":', b'"params":', b'"value":', b'"status":"offline"', b'"msg":', b'"nonce":',
    b'"signature":', b'"id":', b'"eventType":', b"{", b"}", b",", b"1", b"-1", b'"x"'])


@FUZZ
@given(st.lists(push_words | st.binary(max_size=6), max_size=40).map(b"".join))
def test_onenet_push(data: bytes) -> None:
    onenet_push(data)


@FUZZ
@given(st.lists(push_words | st.binary(max_size=6), max_size=40).map(b"".join))
def test_ctwing_push(data: bytes) -> None:
    ctwing_push(data)


@FUZZ
@given(json_values, st.sampled_from(["notify", "lifeCycle", "dataReport", "eventReport",
                                     "deviceOnlineOfflineReport"]))
def test_platform_messages_structured(value: object, kind: str) -> None:
    message = {"messageType": kind, "deviceName": "d", "deviceId": "d", "data": value,
               "payload": value, "eventContent": value}
    body = json.dumps(message, allow_nan=True)
    onenet_push(body.encode())
    onenet_push(json.dumps({"msg": body, "nonce": "abcdefgh", "signature": "x",
                            "id": 1}).encode())
    ctwing_push(body.encode())
@given(st.binary(max_size=600))
def test_gb26875_stream_bytes(data: bytes) -> None:
    gb26875_stream(data)


@FUZZ
@given(st.lists(st.sampled_from(gb26875_seeds()) | st.binary(max_size=12)
                | st.sampled_from([b"@@", b"##", b"\x00\x04", b"\xff\xff", b"\x02\x01"]),
                max_size=12).map(b"".join))
def test_gb26875_stream_near_frames(data: bytes) -> None:
    """Whole frames of every unit type, cut and spliced with the bytes that frame them."""
    gb26875_stream(data)


@FUZZ
@given(st.sampled_from(gb26875_seeds()), st.integers(0, 1200), st.binary(min_size=1,
                                                                         max_size=3))
def test_gb26875_stream_mutated_frames(seed: bytes, at: int, patch: bytes) -> None:
    """A frame with a few bytes changed: its length, its unit's count, a text, its end."""
    at %= len(seed)
    gb26875_stream(seed[:at] + patch + seed[at + len(patch):])
hikvision_words = st.lists(st.sampled_from([
    b"--MIME_boundary\r\n", b"--MIME_boundary--\r\n", b"Content-Type: image/jpeg\r\n",
    b"Content-Type: application/json\r\n", b"Content-Length: 4\r\n", b"\r\n",
    b'{"eventType": "AccessControllerEvent", "AccessControllerEvent": {',
    b'"majorEventType": 5, "subEventType": 27', b'"cardNo": "0042"', b", ", b"}", b"}}",
    b'"currTemperature": 38.5, "isAbnomalTemperature": "true"', b'"mask": "no"',
    b"<EventNotificationAlert>", b"</EventNotificationAlert>", b"<eventType>IO</eventType>",
    b"<!DOCTYPE a [<!ENTITY b 'c'>]>", b"&b;", b"\xff\xd8\xff\xd9",
]) | st.binary(max_size=8), max_size=30).map(b"".join)


@FUZZ
@given(st.binary(max_size=512) | hikvision_words)
def test_hikvision_push(data: bytes) -> None:
    hikvision_push(data)


dahua_words = st.lists(st.sampled_from([
    b"--myboundary\r\n", b"Content-Type: text/plain\r\n", b"Content-Length: 11\r\n", b"\r\n",
    b"Heartbeat", b"Code=AccessControl;action=Pulse;index=0;data=", b"Code=BreakIn;",
    b"Code=AlarmLocal;action=Stop;index=3", b'{"Status": 0, "ErrorCode": 18, "UTC": 5}',
    b'{"CardNo": "77", "Status": 1, "CurrentTemperature": 99, "TemperatureUnit": 1}',
    b'{"Status": "Open"}', b"Code=DoorStatus;action=Pulse;index=0;data=",
]) | st.binary(max_size=8), max_size=30).map(b"".join)


@FUZZ
@given(st.binary(max_size=512) | dahua_words)
def test_dahua_stream(data: bytes) -> None:
    dahua_stream(data)


def test_terminal_targets_take_their_seeds() -> None:
    from fuzz.terminals import SEEDS

    for seed in SEEDS["hikvision_push"]:
        hikvision_push(seed)
    for seed in SEEDS["dahua_stream"]:
        dahua_stream(seed)


@pytest.mark.parametrize("data", [
    # found by atheris, dahua_stream: a Content-Length of "1²" passed str.isdigit() and
    # made int() raise in the multipart reader
    b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nHeartbeat\r\n"
    b"\r\n--myboundary\r\nContent-Type: onten\nContent-Length: 1\xb2\r\n\r\n\r\n-\xd8mon\r\n",
    # the same digit in an event's index
    "--myboundary\r\n\r\nCode=BreakIn;action=Pulse;index=²\r\n--myboundary\r\n".encode(),
])
def test_regression_digits_int_refuses(data: bytes) -> None:
    dahua_stream(data)


def test_regression_digits_int_refuses_in_a_hikvision_notification() -> None:
    hikvision_push('{"eventType": "AccessControllerEvent", "AccessControllerEvent": '
                   '{"majorEventType": "5", "subEventType": "²"}}'.encode())
