"""Seed inputs for the long fuzz runs: real payloads and frames built from the profiles."""

from __future__ import annotations

from pathlib import Path

import msgspec

from drivers.profile import ProfileLibrary
from drivers.serial_frames import SerialFormat
from drivers.serial_frames.frame import build_frame
from fuzz.mqtt_dispatch import message_bytes
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
    if target == "mqtt_dispatch":
        seeds += [message_bytes(flags, topic, payload, mid) for flags, topic, payload, mid in (
            (2, b"vendor/d1/sos", b'{"action": "single"}', 1),
            (0, b"sc/c1/alerts/sos/d1/ack", b'{"by": "duty"}', 0),
            (6, b"a/1/2/b", b"{}", 2), (14, b"$SYS/broker/uptime", b"1", 3))]
    from fuzz.terminals import SEEDS

    seeds += SEEDS.get(target, [])
    for n, seed in enumerate(seeds):
        (directory / f"seed-{n}").write_bytes(seed)
    return len(seeds)


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
