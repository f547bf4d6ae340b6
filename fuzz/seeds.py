"""Seed inputs for the long fuzz runs: real payloads and frames built from the profiles."""

from __future__ import annotations

from pathlib import Path

import msgspec

from drivers.profile import ProfileLibrary
from drivers.serial_frames import SerialFormat
from drivers.serial_frames.frame import build_frame
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
    if target == "config_file":
        example = Path(__file__).parent.parent / "deploy" / "gateway.example.toml"
        seeds.append(example.read_bytes())
    for n, seed in enumerate(seeds):
        (directory / f"seed-{n}").write_bytes(seed)
    return len(seeds)
