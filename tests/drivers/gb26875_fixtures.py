"""Published GB/T 26875.3-2011 frames and application data units, each with its source.

EXAMPLES: the worked examples that accompany the standard's protocol description, as
published in `GB26875文档.md` ("示例" section) of github.com/ActorLancer/GB-T-26875.3.2011-rs:
a transmission device at address 889 (79 03 00 00 00 00) and a monitoring centre at 88888
(38 5B 01 00 00 00), on 2012-09-26 at 09:58.

CAPTURE: a component fire alarm from a panel ("Ａ区１层呷哺走廊"), in
codec/reader_decoder_test.go of github.com/shootingfans/codec_gb26875_3_2011 (the test
sends it once with a checksum of 63, which is wrong, then with 68, which is right).

UNITS: application data units of every upstream type, from codec/codec_test.go of
github.com/shootingfans/codec_gb26875_3_2011 (time tags of 2021-07-02 09:00:04 and :05).
"""

from __future__ import annotations

from typing import Final


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


_DEVICE_TO_CENTRE = "79 03 00 00 00 00 38 5B 01 00 00 00"
_CENTRE_TO_DEVICE = "38 5B 01 00 00 00 79 03 00 00 00 00"
_SENT = "40 40 01 00 01 01 20 3A 09 1A 09 0C"
_ANSWERED = "40 40 01 00 01 01 23 3A 09 1A 09 0C"

EXAMPLES: Final[dict[str, bytes]] = {
    # 1: "zone 10, position 2, smoke detector, fire alarm, 2012-09-26 09:58:02"
    "component_fire": _hex(
        f"{_SENT} {_DEVICE_TO_CENTRE} 30 00 02 02 01 01 01 28 0A 00 02 00 02 00"
        + " 20" * 30 + " 00 02 3A 09 1A 09 0C 46 23 23"),
    "centre_confirm": _hex(f"{_ANSWERED} {_CENTRE_TO_DEVICE} 00 00 03 AB 23 23"),
    "centre_deny": _hex(f"{_ANSWERED} {_CENTRE_TO_DEVICE} 00 00 06 AE 23 23"),
    # 2: the transmission device's main power failed
    "transmitter_power_fault": _hex(
        f"{_SENT} {_DEVICE_TO_CENTRE} 09 00 02 15 01 08 02 3A 09 1A 09 0C 42 23 23"),
    # 3: the duty officer answered a check at the device
    "duty_answer": _hex(
        f"{_SENT} {_DEVICE_TO_CENTRE} 0A 00 02 18 01 20 01 02 3A 09 1A 09 0C 5F 23 23"),
    # 4: software version 1.1
    "transmitter_software": _hex(f"{_SENT} {_DEVICE_TO_CENTRE} 04 00 02 19 01 01 01 C7 23 23"),
    # 5: the transmission device's clock
    "transmitter_time": _hex(
        f"{_SENT} {_DEVICE_TO_CENTRE} 08 00 02 1C 01 02 3A 09 1A 09 0C 40 23 23"),
    # 6: the centre reads the device's state; the device responds with it
    "read_transmitter_status": _hex(
        f"{_SENT} {_CENTRE_TO_DEVICE} 03 00 04 51 01 00 FE 23 23"),
    "response_transmitter_status": _hex(
        f"{_SENT} {_DEVICE_TO_CENTRE} 09 00 05 15 01 08 02 3A 09 1A 09 0C 45 23 23"),
    "device_deny": _hex(f"{_ANSWERED} {_DEVICE_TO_CENTRE} 00 00 06 AE 23 23"),
    # 7, 8: reads of the software version and of the clock, and the responses
    "read_transmitter_software": _hex(
        f"{_SENT} {_CENTRE_TO_DEVICE} 03 00 04 55 01 00 02 23 23"),
    "response_transmitter_software": _hex(
        f"{_SENT} {_DEVICE_TO_CENTRE} 04 00 05 19 01 01 01 CA 23 23"),
    "read_transmitter_time": _hex(f"{_SENT} {_CENTRE_TO_DEVICE} 03 00 04 58 01 00 05 23 23"),
    "response_transmitter_time": _hex(
        f"{_SENT} {_DEVICE_TO_CENTRE} 08 00 05 1C 01 02 3A 09 1A 09 0C 43 23 23"),
    # 9-11: control commands: initialise, synchronise the clock, check the duty officer
    "initialise": _hex(f"{_SENT} {_CENTRE_TO_DEVICE} 03 00 01 59 01 00 03 23 23"),
    "device_confirm": _hex(f"{_ANSWERED} {_DEVICE_TO_CENTRE} 00 00 03 AB 23 23"),
    "sync_clock": _hex(
        f"{_SENT} {_CENTRE_TO_DEVICE} 08 00 01 5A 01 02 3A 09 1A 09 0C 7D 23 23"),
    "duty_check": _hex(f"{_SENT} {_CENTRE_TO_DEVICE} 03 00 01 5B 01 0A 0F 23 23"),
}

CAPTURE: Final = _hex(
    "40 40 00 00 01 01 18 0d 11 16 0a 14 00 00 00 00 00 00 06 05 04 03 02 01 30 00 02"
    " 02 01 01 03 00 d9 00 06 00 02 00 a3 c1 c7 f8 a3 b1 b2 e3 df c8 b2 b8 d7 df c0 c8"
    + " 00" * 15 + " 30 12 13 01 08 14 68 23 23")
CAPTURE_WRONG_CHECKSUM: Final = CAPTURE[:-3] + b"\x63##"

_ROOM = "37 c2 a5 30 32 ca d2 bb e1 d2 e9 ca d2 d1 cc b8 d0"  # 7楼02室会议室烟感
_T4 = "04 00 09 02 07 15"
UNITS: Final[dict[int, bytes]] = {
    1: _hex(f"01 01 01 02 04 02 {_T4}"),
    2: _hex(f"02 01 01 02 79 01 02 03 04 04 02 {_ROOM}" + " 00" * 14 + f" {_T4}"),
    3: _hex(f"03 01 01 02 28 01 02 03 04 03 20 03 {_T4}"),
    4: _hex(f"04 01 01 02 84 fa {_T4}"),
    5: _hex("05 01 01 02 03 04"),
    6: _hex(f"06 01 01 02 1e {_ROOM}" + " 00" * 13),
    7: _hex(f"07 01 01 02 28 01 02 03 04 {_ROOM}" + " 00" * 14),
    8: _hex(f"08 01 01 02 {_T4}"),
    21: _hex(f"15 01 08 {_T4}"),
    24: _hex(f"18 01 31 fa {_T4}"),
    25: _hex("19 01 03 04"),
    26: _hex(f"1a 01 1e {_ROOM}" + " 00" * 13),
    28: _hex("1c 01 05 00 09 02 07 15"),
}
