"""Devices that speak binary frames over a serial line, described by a profile's `[serial]`.

The frame format, scanner and decoder are importable without a serial library (profiles are
checked when the configuration loads); the port-owning driver is
`drivers.serial_frames.driver.SerialFrameDriver`.
"""

from drivers.serial_frames.decode import FrameDecoder
from drivers.serial_frames.frame import Frame, build_frame
from drivers.serial_frames.frame_format import (
    FieldSpec,
    FrameSpec,
    IgnoredBytes,
    SerialFormat,
    parse_serial_format,
)
from drivers.serial_frames.scanner import FrameScanner, Rejected

__all__ = [
    "FieldSpec",
    "Frame",
    "FrameDecoder",
    "FrameScanner",
    "FrameSpec",
    "IgnoredBytes",
    "Rejected",
    "SerialFormat",
    "build_frame",
    "parse_serial_format",
]
