"""The state and operation bits of GB/T 26875.3-2011 (8.2.1): low bit first."""

from __future__ import annotations

import enum


class SystemState(enum.IntFlag):
    """A building fire facility system's state (2 bytes, 8.2.1.1)."""

    NORMAL = 1 << 0  # clear: under test
    FIRE = 1 << 1
    FAULT = 1 << 2
    SHIELDED = 1 << 3
    SUPERVISION = 1 << 4
    STARTED = 1 << 5
    FEEDBACK = 1 << 6
    DELAYED = 1 << 7
    MAIN_POWER_FAULT = 1 << 8
    BACKUP_POWER_FAULT = 1 << 9
    BUS_FAULT = 1 << 10
    MANUAL = 1 << 11  # clear: automatic
    CONFIG_CHANGED = 1 << 12
    RESET = 1 << 13


class ComponentState(enum.IntFlag):
    """A component's (detector, module, button...) state (2 bytes, 8.2.1.2)."""

    NORMAL = 1 << 0  # clear: under test
    FIRE = 1 << 1
    FAULT = 1 << 2
    SHIELDED = 1 << 3
    SUPERVISION = 1 << 4
    STARTED = 1 << 5
    FEEDBACK = 1 << 6
    DELAYED = 1 << 7
    POWER_FAULT = 1 << 8


class TransmitterState(enum.IntFlag):
    """The user information transmission device's own state (1 byte, 8.2.1.8)."""

    NORMAL = 1 << 0  # clear: under test
    FIRE = 1 << 1
    FAULT = 1 << 2
    MAIN_POWER_FAULT = 1 << 3
    BACKUP_POWER_FAULT = 1 << 4
    CHANNEL_FAULT = 1 << 5  # the link to the monitoring centre
    LINE_FAULT = 1 << 6  # the line to the facilities it watches


class SystemOperation(enum.IntFlag):
    """An operation on a facility system's panel (8.2.1.4)."""

    RESET = 1 << 0
    SILENCE = 1 << 1
    MANUAL_ALARM = 1 << 2
    ALARM_CLEARED = 1 << 3
    SELF_TEST = 1 << 4
    CONFIRM = 1 << 5
    TEST = 1 << 6


class TransmitterOperation(enum.IntFlag):
    """An operation on the transmission device (8.2.1.9)."""

    RESET = 1 << 0
    SILENCE = 1 << 1
    MANUAL_ALARM = 1 << 2
    ALARM_CLEARED = 1 << 3
    SELF_TEST = 1 << 4
    INSPECTION_ANSWER = 1 << 5  # the duty officer answered the centre's check
    TEST = 1 << 6


def names(flags: enum.IntFlag) -> str:
    """`fire+fault`, in bit order; `none` when no bit is set."""
    return "+".join(f.name.lower() for f in type(flags) if f in flags and f.name) or "none"
