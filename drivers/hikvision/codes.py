"""Access controller event codes (majorEventType, subEventType) and what they become.

From Hikvision's Device Network SDK (Card-Based Access Control) developer guide, "Access
Control Event Types" (V6.1.5.X, 2022-03): MAJOR_ALARM 0x1, MAJOR_EXCEPTION 0x2,
MAJOR_OPERATION 0x3, MAJOR_EVENT 0x5, and the minor types below; the same constants are in
Hikvision's HEOP demo (com/hik/proto/data/param/EventType.kt). ISAPI pushes carry them as
decimal numbers (e.g. major 5, minor 75: face authentication passed).
"""

from __future__ import annotations

from typing import Final

MAJOR_ALARM: Final = 0x1
MAJOR_EXCEPTION: Final = 0x2
MAJOR_OPERATION: Final = 0x3
MAJOR_EVENT: Final = 0x5

# MAJOR_EVENT minors: a person was let in
GRANTED: Final[dict[int, str]] = {
    0x01: "card", 0x02: "card_and_password", 0x10: "multi_factor", 0x26: "fingerprint",
    0x28: "card_and_fingerprint", 0x2B: "card_fingerprint_password",
    0x2E: "fingerprint_and_password", 0x36: "face_and_fingerprint", 0x39: "face_and_password",
    0x3C: "face_and_card", 0x3F: "face_password_fingerprint",
    0x42: "face_card_fingerprint", 0x45: "employee_no_and_fingerprint",
    0x48: "employee_no_fingerprint_password", 0x4B: "face", 0x4D: "employee_no_and_face",
    0x65: "employee_no_and_password", 0x69: "person_and_id_card", 0x99: "combined",
    0x9C: "qr_code", 0x9F: "bluetooth", 0xB5: "password",
}

# MAJOR_EVENT minors: a person was refused, and why
DENIED: Final[dict[int, str]] = {
    0x03: "card_and_password_failed", 0x04: "card_and_password_timeout",
    0x05: "card_and_password_too_many", 0x06: "no_permission", 0x07: "outside_schedule",
    0x08: "card_expired", 0x09: "unknown_card", 0x0A: "anti_passback",
    0x0B: "interlock", 0x27: "fingerprint_mismatch", 0x29: "card_and_fingerprint_failed",
    0x31: "unknown_fingerprint", 0x37: "face_and_fingerprint_failed",
    0x3A: "face_and_password_failed", 0x3D: "face_and_card_failed", 0x4C: "face_mismatch",
    0x4E: "employee_no_and_face_failed", 0x50: "face_not_recognised",
    0x66: "employee_no_and_password_failed", 0x68: "liveness_check_failed",
    0x70: "person_and_id_card_mismatch", 0x71: "blocklisted", 0x94: "password_too_many",
    0x96: "wrong_password", 0x97: "wrong_password", 0x98: "unknown_employee_no",
    0x9B: "verify_mode_mismatch", 0x9D: "qr_code_failed", 0xA0: "bluetooth_failed",
    0xC3: "password_expired",
}

# MAJOR_EVENT minors read from the door contact
DOOR: Final[dict[int, str]] = {
    0x19: "door_opened",  # MINOR_DOOR_OPEN_NORMAL
    0x1A: "door_closed",  # MINOR_DOOR_CLOSE_NORMAL
    0x1B: "forced_open",  # MINOR_DOOR_OPEN_ABNORMAL
    0x1C: "held_open",  # MINOR_DOOR_OPEN_TIMEOUT
}

# MAJOR_ALARM minors
ALARM: Final[dict[int, str]] = {
    0x404: "tamper",  # MINOR_HOST_DESMANTLE_ALARM
    0x405: "tamper_cleared",  # MINOR_HOST_DESMANTLE_RESUME
    0x406: "tamper",  # MINOR_CARD_READER_DESMANTLE_ALARM
    0x407: "tamper_cleared",  # MINOR_CARD_READER_DESMANTLE_RESUME
    0x408: "alarm_input",  # MINOR_CASE_SENSOR_ALARM
    0x409: "alarm_input_cleared",  # MINOR_CASE_SENSOR_RESUME
    0x40A: "duress",  # MINOR_STRESS_ALARM
}


def access_event(major: int, minor: int) -> tuple[str, str | None] | None:
    """(event type, reason) of an access controller event; None for one the gateway
    does not report (operations, exceptions, unlisted minors)."""
    if major == MAJOR_EVENT:
        if minor in GRANTED:
            return "granted", None
        if minor in DENIED:
            return "denied", DENIED[minor]
        if minor in DOOR:
            return DOOR[minor], None
        return None
    if major == MAJOR_ALARM and minor in ALARM:
        return ALARM[minor], None
    return None


def verify_method(minor: int) -> str | None:
    """How a person was let in, by the granted minor type."""
    return GRANTED.get(minor)
