"""A serial device built from any serial profile: it sends frames on a pty pair.

The gateway opens `link`, a symlink to the pty's device side, as if it were /dev/ttyUSB0.
Values are given per field name in the units the gateway should read (°C, not 0.1 °C);
unnamed fields take a harmless default, so every frame type of every profile can be sent
without device-specific code. Faults: garbage before a frame, a corrupt checksum, a
truncated frame, an out-of-range value, and pulling the plug (`disconnect`/`reconnect`).

    python -m simulators.serial_device serial-temp-gate /tmp/tty-gate --every 2
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import os
import random
import tty
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from drivers.profile import BUILTIN, Profile, ProfileLibrary
from drivers.serial_frames import FieldSpec, FrameSpec, SerialFormat, build_frame
from drivers.serial_frames.datatypes import INTEGERS, pack
from gateway.core.kinds import MODELS, ReadingSpec

Value = int | float | str | bytes


class Fault(enum.StrEnum):
    GARBAGE = "garbage"  # random bytes (never the header's first byte) before the frame
    CORRUPT_CHECKSUM = "corrupt_checksum"
    TRUNCATED = "truncated"  # only the first half of the frame
    OUT_OF_RANGE = "out_of_range"  # the first bounded reading just above its range


class SerialDeviceSimulator:
    """One device on one pty; `open` (or `async with`) plugs it in."""

    def __init__(self, profile: Profile, link: Path, *, seed: int = 0) -> None:
        if not isinstance(profile.mapping, SerialFormat):
            raise ValueError(f"profile {profile.name} is not a serial profile")
        self.profile = profile
        self.format = profile.mapping
        self.link = link
        self._readings = MODELS[profile.kind].readings
        self._rng = random.Random(seed)
        self._master: int | None = None
        self._slave: int | None = None
        self.device_path: str | None = None  # the pty's device side while plugged in

    async def __aenter__(self) -> SerialDeviceSimulator:
        self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.disconnect()

    @property
    def connected(self) -> bool:
        return self._master is not None

    def open(self) -> None:
        """Create the pty pair and point `link` at its device side."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        # raw before anyone opens it: the line discipline must not rewrite binary frames
        tty.setraw(slave)
        os.set_blocking(master, False)
        # keeping the device side open makes the gateway see a hang-up, not a vanished reader
        self._master, self._slave = master, slave
        self.device_path = os.ttyname(slave)
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.device_path)
        os.replace(tmp, self.link)

    def disconnect(self) -> None:
        """Pull the plug: close the pty (the gateway's reads fail) and remove `link`."""
        self.link.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self.device_path = None

    def reconnect(self) -> None:
        """Plug back in, on a new pty behind the same `link`."""
        self.disconnect()
        self.open()

    def frame(self, frame: str | int, values: Mapping[str, Value] | None = None,
              *, fault: Fault | None = None) -> bytes:
        """The bytes of one frame of type or name `frame`, with `fault` applied."""
        spec = self._spec(frame)
        chosen = dict(values or {})
        if fault is Fault.OUT_OF_RANGE:
            field, value = self._out_of_range(spec)
            chosen[field.name] = value
        data = build_frame(self.format, spec.type, self._payload(spec, chosen))
        if fault is Fault.CORRUPT_CHECKSUM:
            at = len(data) - len(self.format.trailer or b"") - 1
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        elif fault is Fault.TRUNCATED:
            data = data[:len(data) // 2]
        elif fault is Fault.GARBAGE:
            data = self.garbage(self._rng.randint(3, 12)) + data
        return data

    def garbage(self, n: int) -> bytes:
        """`n` random bytes that cannot start a header."""
        first = self.format.header[0]
        return bytes(self._rng.choice([b for b in range(256) if b != first]) for _ in range(n))

    async def send(self, frame: str | int, values: Mapping[str, Value] | None = None,
                   *, fault: Fault | None = None) -> bytes:
        """Send one frame; returns the bytes sent."""
        data = self.frame(frame, values, fault=fault)
        await self.send_raw(data)
        return data

    async def send_raw(self, data: bytes) -> None:
        if self._master is None:
            raise RuntimeError("the simulated device is unplugged")
        master = self._master
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(master, view):]
            except BlockingIOError:
                await _writable(master)

    def _spec(self, frame: str | int) -> FrameSpec:
        for spec in self.format.frames:
            if frame in (spec.type, spec.name):
                return spec
        raise KeyError(f"profile {self.profile.name} has no frame {frame!r}")

    def _payload(self, spec: FrameSpec, values: dict[str, Value]) -> bytes:
        unknown = set(values) - {f.name for f in spec.fields} - {i.name for i in spec.ignore}
        if unknown:
            raise KeyError(f"frame {spec.name} has no field {', '.join(sorted(unknown))}")
        payload = bytearray(spec.min_payload)
        for field in spec.fields:
            value = values.get(field.name, self._default(field))
            raw = pack(field.datatype, field.size, self._raw(field, value))
            payload[field.offset:field.offset + len(raw)] = raw
        for ignored in spec.ignore:
            value = values.get(ignored.name, b"")
            raw = value if isinstance(value, bytes) else str(value).encode()
            payload[ignored.offset:ignored.offset + ignored.size] = raw[:ignored.size].ljust(
                ignored.size, b"\x00")
        return bytes(payload)

    def _raw(self, field: FieldSpec, value: Value) -> int | str:
        if isinstance(value, bytes):
            return value.decode("ascii")
        if field.reading is not None and isinstance(value, int | float):
            return round(value / field.scale)
        if isinstance(value, float):
            return round(value)
        return value

    def _default(self, field: FieldSpec) -> Value:
        """A value that raises no event and sits inside its reading's range."""
        if field.card:
            return "" if field.datatype == "ascii" else 0
        if field.event is not None:
            if field.equals is None:
                return 0
            if isinstance(field.equals, str):
                return ""
            return 1 if field.equals == 0 else 0
        if field.map:
            first = next(iter(field.map))
            return int(first) if first.isdigit() else first
        if field.reading is not None:
            return sample(self._readings[field.reading])
        return 1 if field.datatype in INTEGERS else "x"

    def _out_of_range(self, spec: FrameSpec) -> tuple[FieldSpec, float]:
        for field in spec.fields:
            if field.reading is not None:
                bounds = self._readings[field.reading]
                if bounds.high is not None:
                    return field, bounds.high + max(1.0, abs(field.scale))
        raise ValueError(f"frame {spec.name} has no bounded reading to push out of range")


def sample(spec: ReadingSpec) -> float:
    """A value well inside a reading's range."""
    low = spec.low if spec.low is not None else 0.0
    if spec.integer or spec.high is None:
        return low
    return (low + spec.high) / 2


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _main(profile: Profile, link: Path, every: float) -> None:
    async with SerialDeviceSimulator(profile, link) as device:
        print(f"{profile.name} on {link} -> {device.device_path}")
        while True:
            for spec in device.format.frames:
                await device.send(spec.type)
                await asyncio.sleep(every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profile")
    parser.add_argument("link", type=Path)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between frames")
    args = parser.parse_args()
    asyncio.run(_main(ProfileLibrary([BUILTIN]).get(args.profile), args.link, args.every))


if __name__ == "__main__":
    main()
