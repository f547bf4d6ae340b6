"""The bytes of a pass-through (透传) device, decoded with the byte layout of its profile.

A CTWing pass-through uplink carries the device's own frame in `APPdata`. Its layout is
the same data as a serial device's (`[serial]` in the profile: header, length, type,
checksum, fields), so the serial frame scanner and decoder read it; one uplink is one
frame, and anything left over or broken is a problem of that uplink.
"""

from __future__ import annotations

from drivers.json_map import Decoded
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames import FrameDecoder, FrameScanner, Rejected, SerialFormat
from gateway.core.model import DeviceKind


class AppData:
    def __init__(self, fmt: SerialFormat, kind: DeviceKind, device: str,
                 pseudonymise: Pseudonymiser | None = None) -> None:
        self._fmt = fmt
        self._decoder = FrameDecoder(fmt, kind, device, pseudonymise)

    def decode(self, data: bytes, ts: int) -> Decoded:
        scanner = FrameScanner(self._fmt)
        found = scanner.feed(data, 0.0) + scanner.close()
        out = Decoded()
        for item in found:
            if isinstance(item, Rejected):
                out.problems.append((item.reason, f"APPdata: {item.detail}"))
                continue
            decoded = self._decoder.decode(item, ts)
            out.problems += decoded.problems
            out.events += decoded.events
            if decoded.reading is not None:
                out.reading = decoded.reading  # one frame per uplink: the last one wins
        if not any(not isinstance(item, Rejected) for item in found) and not out.problems:
            out.problems.append(("no_frame", f"APPdata: no frame in {len(data)} bytes"))
        return out
