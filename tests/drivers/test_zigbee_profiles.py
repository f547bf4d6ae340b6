"""The zigbee2mqtt device models on the payloads zigbee2mqtt publishes for them, the pieces
their profiles are composed of, and zigbee2mqtt's availability payloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.json_map import JsonMap, JsonMapper
from drivers.profile import BUILTIN, ProfileLibrary, load_profile
from drivers.zigbee2mqtt import BadAvailabilityError, parse_availability
from gateway.config_file import parse_config
from gateway.core.problems import ConfigError

LIBRARY = ProfileLibrary()

# (payload, event types it raises, readings it gives), in the order a device sends them
Step = tuple[dict[str, Any], list[str], dict[str, float]]

FIXTURES: dict[str, list[Step]] = {
    "heiman-hs1sa": [
        # captured from an HS1SA in alarm: Koenkk/zigbee2mqtt issue #3164 (zigbee2mqtt
        # 1.x log, "MQTT publish: topic 'zigbee2mqtt/0x00158d0004c07fa8'"). The first
        # report after a start raises a standing alarm, not the quiet flags
        ({"battery": 96.5, "linkquality": 92, "enrolled": True, "smoke": True,
          "battery_low": False}, ["alarm"], {"battery_pct": 96.5, "linkquality": 92,
                                             "smoke": 1}),
        # the keys zigbee-herdsman-converters' ias_smoke_alarm_1 decodes from the IAS zone
        # status (converters/fromZigbee), which the HS1SA definition uses (devices/heiman)
        ({"battery": 96, "battery_low": False, "smoke": False, "tamper": False,
          "supervision_reports": True, "restore_reports": True, "trouble": False,
          "ac_status": False, "test": False, "battery_defect": False, "linkquality": 90},
         ["alarm_cleared"], {"battery_pct": 96, "linkquality": 90, "smoke": 0}),
        ({"battery": 96, "battery_low": True, "smoke": False, "tamper": True,
          "supervision_reports": True, "restore_reports": True, "trouble": True,
          "ac_status": False, "test": True, "battery_defect": False, "linkquality": 90},
         ["low_battery", "tamper", "fault", "test"],
         {"battery_pct": 96, "linkquality": 90, "smoke": 0}),
    ],
    "heiman-hs1eb": [
        # zigbee2mqtt.io docs/devices/HS1EB_HS1EB-E.md: exposes battery, action (off,
        # single, double, hold), linkquality; zigbee-herdsman-converters'
        # command_status_change_notification_action maps zone status 0-3 to those actions
        ({"action": "single", "battery": 100, "linkquality": 87}, ["press"],
         {"battery_pct": 100, "linkquality": 87}),
        ({"action": "off", "battery": 100, "linkquality": 87}, [],
         {"battery_pct": 100, "linkquality": 87}),
        ({"action": "double", "battery": 100, "linkquality": 80}, ["press"],
         {"battery_pct": 100, "linkquality": 80}),
        ({"action": "hold", "battery": 99, "linkquality": 80}, ["cancel"],
         {"battery_pct": 99, "linkquality": 80}),
        # zigbee2mqtt never caches `action`: a later battery report has none
        ({"battery": 99, "linkquality": 76}, [], {"battery_pct": 99, "linkquality": 76}),
    ],
    "tuya-ts0215a-sos": [
        # zigbee2mqtt 2.x with a Tuya SOS pendant (a TS0601_sos, whose action expose is the
        # same `emergency`): Koenkk/zigbee2mqtt issue #31727, debug log of 4/17/2026 -
        # `null` in reports without a press, `""` right after one
        ({"action": None, "battery": 100, "last_seen": "2026-04-17T23:33:17+08:00",
          "linkquality": 14}, [], {"battery_pct": 100, "linkquality": 14}),
        ({"action": "emergency", "battery": 100, "last_seen": "2026-04-17T23:33:22+08:00",
          "linkquality": 18}, ["press"], {"battery_pct": 100, "linkquality": 18}),
        ({"action": "", "battery": 100, "last_seen": "2026-04-17T23:33:22+08:00",
          "linkquality": 18}, [], {"battery_pct": 100, "linkquality": 18}),
    ],
    "aqara-sjcgq11lm": [
        # zigbee2mqtt 1.22 right after a restart, flags not read yet: Koenkk/zigbee2mqtt
        # issue #10514 (the `device` block of its legacy attribute output left out)
        ({"battery": 100, "battery_low": None, "elapsed": 3022520,
          "last_seen": "2022-01-02T13:54:08+01:00", "linkquality": 167, "temperature": 31,
          "voltage": 3005, "water_leak": None}, [], {"battery_pct": 100, "linkquality": 167}),
        # an SJCGQ11LM's state on zigbee2mqtt 1.25.2: Koenkk/zigbee2mqtt issue #12924
        ({"battery": 100, "battery_low": False, "device_temperature": 26,
          "last_seen": 1656118444933, "linkquality": 83, "tamper": False, "temperature": 26,
          "voltage": 3025, "water_leak": False}, [], {"battery_pct": 100, "linkquality": 83}),
        ({"battery": 100, "battery_low": False, "device_temperature": 26,
          "last_seen": 1656118544933, "linkquality": 83, "tamper": False, "temperature": 26,
          "voltage": 3025, "water_leak": True}, ["water_high"],
         {"battery_pct": 100, "linkquality": 83}),
        ({"battery": 100, "battery_low": False, "device_temperature": 26,
          "last_seen": 1656118644933, "linkquality": 81, "tamper": False, "temperature": 26,
          "voltage": 3025, "water_leak": False}, ["water_ok"],
         {"battery_pct": 100, "linkquality": 81}),
    ],
}


def test_every_zigbee2mqtt_profile_has_published_fixtures() -> None:
    bridged = {n for n in LIBRARY.names() if LIBRARY.get(n).availability_topic is not None}
    assert bridged == set(FIXTURES)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_profile_on_published_payloads(name: str) -> None:
    profile = LIBRARY.get(name)
    assert isinstance(profile.mapping, JsonMap)
    mapper = JsonMapper(profile.mapping, profile.kind, "dev-1")
    for ts, (payload, events, readings) in enumerate(FIXTURES[name], start=1):
        decoded = mapper.decode(payload, ts)
        assert decoded.problems == [], payload
        assert [e.type for e in decoded.events] == events, payload
        assert decoded.reading is not None
        assert decoded.reading.values == pytest.approx(readings), payload


def test_an_action_the_model_does_not_have_is_rejected_as_unmapped() -> None:
    profile = LIBRARY.get("heiman-hs1eb")
    assert isinstance(profile.mapping, JsonMap)
    decoded = JsonMapper(profile.mapping, profile.kind, "sos-1").decode(
        {"action": "triple", "battery": 90}, 1)
    assert decoded.problems == [("unmapped_event", "action='triple' is not mapped")]
    assert decoded.events == []
    assert decoded.reading is not None  # the battery is still kept


def test_profiles_are_composed_of_the_shared_pieces() -> None:
    smoke = LIBRARY.get("heiman-hs1sa")
    leak = LIBRARY.get("aqara-sjcgq11lm")
    assert isinstance(smoke.mapping, JsonMap)
    assert isinstance(leak.mapping, JsonMap)
    # pieces first, in include order, then the profile's own entries
    assert [r.path for r in smoke.mapping.readings] == ["battery", "linkquality", "smoke"]
    assert [(e.path, e.event) for e in smoke.mapping.events][:4] == [
        ("battery_low", "low_battery"), ("battery_low", "battery_ok"),
        ("tamper", "tamper"), ("tamper", "tamper_cleared")]
    assert smoke.mapping.events[:4] == leak.mapping.events[:4]  # one piece, two kinds
    assert smoke.availability_for("zigbee2mqtt/smoke-3-1") == (
        "zigbee2mqtt/smoke-3-1/availability")


def test_one_profile_covers_a_model_and_its_white_labels() -> None:
    sos = LIBRARY.get("tuya-ts0215a-sos")
    for model in ("TS0215A_sos", "R7052", "ZBPB10BK", "BT400B"):
        assert LIBRARY.for_model(model) is sos
        assert LIBRARY.get(model) is sos  # a device may name its model instead
    assert LIBRARY.for_model("HS3SA/HS1SA") is LIBRARY.get("heiman-hs1sa")
    with pytest.raises(KeyError, match="no profile covers the model 'HS2SK'"):
        LIBRARY.for_model("HS2SK")


def _write(directory: Path, name: str, text: str) -> Path:
    file = directory / f"{name}.toml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


PROFILE = """name = "{name}"
kind = "elder_button"
transport = "json"
{extra}
[json]
events = [{{ path = "action", map = {{ "single" = "press" }} }}]
"""


def test_a_missing_include_names_the_piece_and_where_it_was_looked_for(tmp_path: Path
                                                                         ) -> None:
    file = _write(tmp_path, "button", PROFILE.format(
        name="button", extra='include = ["zigbee/battery", "zigbee/batery"]'))
    with pytest.raises(ConfigError) as caught:
        load_profile(file)
    assert caught.value.file == file
    (problem,) = caught.value.problems
    assert problem.path == "include[1]"
    assert "no piece 'zigbee/batery'" in problem.message
    assert str(tmp_path) in problem.message
    assert str(BUILTIN) in problem.message


def test_cyclic_includes_are_refused_with_the_cycle(tmp_path: Path) -> None:
    _write(tmp_path, "site/a", 'include = ["site/b"]\n')
    _write(tmp_path, "site/b", 'include = ["zigbee/battery", "site/a"]\n')
    file = _write(tmp_path, "button", PROFILE.format(name="button",
                                                     extra='include = ["site/a"]'))
    with pytest.raises(ConfigError) as caught:
        load_profile(file)
    (problem,) = caught.value.problems
    assert caught.value.file == tmp_path / "site" / "b.toml"
    assert problem.path == "include[1]"
    assert problem.message == "includes form a cycle: button -> site/a -> site/b -> site/a"


def test_a_piece_reached_twice_is_merged_once(tmp_path: Path) -> None:
    _write(tmp_path, "site/ias", 'include = ["zigbee/battery", "zigbee/tamper"]\n')
    file = _write(tmp_path, "button", PROFILE.format(
        name="button", extra='include = ["zigbee/battery", "site/ias", "zigbee/tamper"]'))
    mapping = load_profile(file).mapping
    assert isinstance(mapping, JsonMap)
    assert [r.path for r in mapping.readings] == ["battery"]
    assert [e.path for e in mapping.events] == ["tamper", "tamper", "action"]


def test_a_piece_cannot_name_a_model_nor_repeat_an_entry(tmp_path: Path) -> None:
    _write(tmp_path, "site/named", 'name = "x"\nmodels = ["X1"]\n')
    file = _write(tmp_path, "button", PROFILE.format(name="button",
                                                     extra='include = ["site/named"]'))
    with pytest.raises(ConfigError) as caught:
        load_profile(file)
    assert [p.path for p in caught.value.problems] == ["name", "models"]
    assert caught.value.file == tmp_path / "site" / "named.toml"

    twice = _write(tmp_path, "twice", PROFILE.format(name="twice", extra="""
include = ["zigbee/battery"]
[[json.readings]]
path = "battery"
reading = "battery_pct"
"""))
    with pytest.raises(ConfigError) as caught:
        load_profile(twice)
    (problem,) = caught.value.problems
    assert problem.path == "json.readings"
    assert problem.message.startswith("this file repeats an entry an included piece has")


def test_a_piece_entry_the_kind_does_not_have_is_reported_after_merging(tmp_path: Path
                                                                          ) -> None:
    file = _write(tmp_path, "button", PROFILE.format(name="button",
                                                     extra='include = ["zigbee/tamper"]'))
    assert load_profile(file).kind.value == "elder_button"  # tamper: every kind has it
    _write(tmp_path, "site/leak", '[json]\nevents = [{ path = "water_leak", equals = true, '
           'event = "water_high" }]\n')
    file = _write(tmp_path, "button2", PROFILE.format(name="button2",
                                                      extra='include = ["site/leak"]'))
    with pytest.raises(ConfigError) as caught:
        load_profile(file)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("json.events[0]", "'water_high' is not an event of elder_button devices")]


def test_a_site_piece_overrides_the_shipped_one(tmp_path: Path) -> None:
    site = tmp_path / "profiles"
    _write(site, "zigbee/availability", 'availability_topic = "{topic}/state"\n')
    library = ProfileLibrary([BUILTIN, site])
    assert library.get("heiman-hs1eb").availability_for("z2m/sos") == "z2m/sos/state"
    assert LIBRARY.get("heiman-hs1eb").availability_for("z2m/sos") == "z2m/sos/availability"


def test_an_availability_topic_must_name_the_device(tmp_path: Path) -> None:
    file = _write(tmp_path, "button", PROFILE.format(
        name="button", extra='availability_topic = "zigbee2mqtt/bridge/state"'))
    with pytest.raises(ConfigError) as caught:
        load_profile(file)
    assert [p.path for p in caught.value.problems] == ["availability_topic"]


@pytest.mark.parametrize(("payload", "online"), [
    # zigbee2mqtt 1.x legacy payload: a gist of zigbee2mqtt's log (sjorge, 2020-06-16),
    # "MQTT publish: topic 'zigbee2mqtt/bedroom/desk_lamp/bulb/availability', payload
    # 'offline'"
    (b"offline", False),
    (b"online", True),
    # zigbee2mqtt 1.24+ with advanced.legacy_availability_payload: false, and 2.x: as
    # quoted in yellowstonesoftware/zmqtt2prom issue #25 (2025-12-01)
    (b'{"state": "online"}', True),
    (b'{"state":"offline"}', False),
    (b"online\n", True),
])
def test_both_availability_payloads(payload: bytes, online: bool) -> None:
    assert parse_availability(payload) is online


@pytest.mark.parametrize(("payload", "message"), [
    (b"ONLINE", "neither online/offline nor JSON"),
    (b'{"state": "unknown"}', "state='unknown'"),
    (b'{"available": true}', "state=None"),
    (b'["online"]', "state=None"),
    (b'{"state": "online", "state": "offline"}', "neither online/offline nor JSON"),
])
def test_an_availability_payload_that_says_neither_is_refused(payload: bytes, message: str
                                                              ) -> None:
    with pytest.raises(BadAvailabilityError, match=message.replace("(", r"\(")):
        parse_availability(payload)


def test_a_device_may_name_its_model_and_is_checked_against_its_kind(tmp_path: Path) -> None:
    def config(kind: str, profile: str) -> dict[str, Any]:
        return {"site": "c1", "store": {"url": "http://127.0.0.1:9"}, "devices": [
            {"id": "sos-1", "kind": kind, "transport": "mqtt", "profile": profile,
             "mqtt": {"topic": "zigbee2mqtt/sos-1"}}]}

    parsed = parse_config(config("elder_button", "TS0215A_sos"), tmp_path / "g.toml", {})
    assert parsed.devices[0].profile == "TS0215A_sos"
    with pytest.raises(ConfigError) as caught:
        parse_config(config("smoke", "HS1EB/HS1EB-E"), tmp_path / "g.toml", {})
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("devices[0].profile", "profile heiman-hs1eb is for elder_button devices, not smoke")]
    with pytest.raises(ConfigError) as caught:
        parse_config(config("smoke", "HS9XX"), tmp_path / "g.toml", {})
    assert caught.value.problems[0].message.startswith("no profile 'HS9XX' (known: ")
