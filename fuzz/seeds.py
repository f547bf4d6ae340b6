"""Seed inputs for the long fuzz runs: real payloads and frames built from the profiles."""

from __future__ import annotations

from pathlib import Path

import msgspec

from drivers.profile import ProfileLibrary
from drivers.serial_frames import SerialFormat
from drivers.serial_frames.frame import build_frame
from fuzz.mqtt_dispatch import message_bytes
from fuzz.mqtt_stream import publish_stream
from simulators.json_device import JsonPayloads


def write_seeds(target: str, directory: Path) -> int:
    """Write seed files for `target` into `directory`; returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    library = ProfileLibrary()
    seeds: list[bytes] = []
    for name in library.names():
        profile = library.get(name)
        if target == "json_payload" and profile.transport == "json":
            payloads = JsonPayloads(profile)
            for event in sorted({e.event for e in payloads._map.events if e.event}
                                | {v for e in payloads._map.events for v in e.map.values()}):
                seeds.append(msgspec.json.encode(payloads.payload(event=event)))
        if target == "serial_stream" and isinstance(profile.mapping, SerialFormat):
            for spec in profile.mapping.frames:
                seeds.append(build_frame(profile.mapping, spec.type, bytes(spec.min_payload)))
    if target == "rule_file":
        packs = Path(__file__).parent.parent / "rules" / "packs"
        seeds += [f.read_bytes() for f in sorted(packs.glob("*.yaml"))]
        seeds += PATHOLOGICAL_RULE_FILES
    if target == "config_file":
        example = Path(__file__).parent.parent / "deploy" / "gateway.example.toml"
        seeds.append(example.read_bytes())
        seeds += PATHOLOGICAL_CONFIG_FILES
    if target in ("onenet_push", "ctwing_push"):
        seeds += _PLATFORM_SEEDS[target]
    if target == "mqtt_dispatch":
        seeds += [message_bytes(flags, topic, payload, mid) for flags, topic, payload, mid in (
            (2, b"vendor/d1/sos", b'{"action": "single"}', 1),
            (0, b"sc/c1/alerts/sos/d1/ack", b'{"by": "duty"}', 0),
            (6, b"a/1/2/b", b"{}", 2), (14, b"$SYS/broker/uptime", b"1", 3))]
    if target == "mqtt_stream":
        seeds += [bytes([cut]) + publish_stream(messages) for cut, messages in (
            (0, [("vendor/d1/sos", b'{"action": "single"}', 1)]),
            (6, [("a/b", b"1", 0), ("a/c", b"x" * 300, 1), ("a/d", b"", 1)]),
            (255, [("sc/c1/alerts/sos/d1/ack", b'{"by": "duty"}', 1)] * 3))]
    if target == "availability":
        seeds += [b"online", b"offline", b'{"state":"online"}', b'{"state": "offline"}']
    if target == "profile_file":
        profiles = Path(__file__).parent.parent / "drivers" / "profiles"
        seeds += [f.read_bytes() for f in sorted(profiles.rglob("*.toml"))]
    if target == "gb26875_stream":
        seeds += gb26875_seeds()
    from fuzz.terminals import SEEDS

    seeds += SEEDS.get(target, [])
    for n, seed in enumerate(seeds):
        (directory / f"seed-{n}").write_bytes(seed)
    return len(seeds)


def gb26875_seeds() -> list[bytes]:
    """A frame of every unit type the codec knows, a heartbeat and a confirm."""
    import dataclasses

    from drivers.gb26875.frame import Command, Frame, TimeTag
    from drivers.gb26875.objects import ComponentAddress
    from drivers.gb26875.units import OBJECTS, Unit

    time = TimeTag(2, 58, 9, 26, 9, 12)
    by_type: dict[str, object] = {"TimeTag": time, "ComponentAddress": ComponentAddress(3, 17),
                                  "str": "3号楼2层"}
    frames = [Frame(serial=1, command=Command.SEND, source=889, destination=1, time=time),
              Frame(serial=1, command=Command.CONFIRM, source=1, destination=889, time=time)]
    for kind, cls in OBJECTS.items():
        obj = cls(*(by_type.get(str(f.type), 1) for f in dataclasses.fields(cls)))  # type: ignore[arg-type]
        unit = Unit(kind, (obj, obj))
        frames.append(Frame(serial=2, command=Command.SEND, source=889, destination=1,
                            time=time, data=unit.encode()))
    return [f.encode() for f in frames]


_SOS = b"rules:\n  - id: sos\n    match: {kind: elder_button, type: press}\n" \
       b"    clear: {type: cancel}\n"

# files that once cost the gateway its memory, its stack or its time; each must be refused
PATHOLOGICAL_RULE_FILES: list[bytes] = [
    # nine anchors of nine aliases each: 9**9 values from a few hundred bytes
    b"".join(b"%s: &%s [%s]\n" % (name, name, b", ".join([b"*" + prev if prev else b"lol"] * 9))
             for prev, name in zip([b"", *(bytes([c]) for c in b"abcdefgh")],
                                   (bytes([c]) for c in b"abcdefghi"), strict=True)),
    b"rules: &x [*x]\n",
    b"rules: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    _SOS + b"    message: m\n    condition: \"" + b"not " * 200 + b"true\"\n",
    _SOS + b"    message: m\n    condition: \"1" + b"0" * 900 + b" > 1\"\n",
    _SOS + b"    message: '{device:>10000000}'\n",
    _SOS + b"    message: m\n    min_refire: " + b"9" * 400 + b"h\n",
    _SOS + b"    message: 2026-13-45\n",
    _SOS + b"    message: m\n    consecutive: 1" + b"0" * 4000 + b"\n",
]
PATHOLOGICAL_CONFIG_FILES: list[bytes] = [
    b"x = " + b"[" * 2000 + b"]" * 2000 + b"\n",
    b"x = " + b"{a = " * 2000 + b"1" + b"}" * 2000 + b"\n",
    b"a." * 2000 + b"b = 1\n",
    b"x = " + b"1" * 5000 + b"\n",
]


# a published message of each platform (see tests/drivers/test_*_push.py for the sources)
_PLATFORM_SEEDS: dict[str, list[bytes]] = {
    "onenet_push": [
        b'{"msg": "{\\"messageType\\":\\"notify\\",\\"notifyType\\":\\"property\\",'
        b'\\"productId\\":\\"00001\\",\\"deviceName\\":\\"iot-0001\\",\\"data\\":'
        b'{\\"id\\":\\"12345\\",\\"params\\":{\\"smoke_state\\":{\\"value\\":1,'
        b'\\"time\\":1524448722123}}}}", "nonce": "abcdefgh", "signature": "x", '
        b'"time": 1591340648197, "id": "3799902"}',
        b'{"projectId": "990909090", "productId": "00001", "deviceName": "iot-0001", '
        b'"messageType": "lifeCycle", "data": {"status": "online", "time": 1524448722123}}',
    ],
    "ctwing_push": [
        b'{"upPacketSN":-1,"upDataSN":-1,"topic":"v1/up/ad","timestamp":1650554828842,'
        b'"tenantId":"2000033629","serviceId":"","protocol":"lwm2m","productId":"15114816",'
        b'"payload":{"APPdata":"AQFWMS4wAAAAACMAAAAH/wAlODYyNTkyMDUxNjUxNDcyAAEAMjUAODAAAAAAAAAB'
        b'AQAAAAEAAASD"},"messageType":"dataReport","deviceType":"",'
        b'"deviceId":"40edca19b0124480864366de4621de99","assocAssetId":"","IMSI":"undefined",'
        b'"IMEI":"862592051651472"}',
        b'{"timestamp":1619523036482,"tenantId":"2000033827","protocol":"lwm2m",'
        b'"productId":"15045240","messageType":"deviceOnlineOfflineReport","iccid":"undefined",'
        b'"eventType":1,"deviceId":"d01308047f864601a821e02dc328eab4"}',
    ],
}
