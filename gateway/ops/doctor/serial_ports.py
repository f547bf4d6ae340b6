"""Do the configured serial ports exist, and may this user open them?"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import getpass
import os
import stat
from dataclasses import dataclass

from gateway.core.config import GatewayConfig, SerialDevice
from gateway.ops.doctor.finding import Finding, fail, ok, warn

CHECK = "serial"

# the Raspberry Pi's primary UART: missing until the UART is enabled
_PI_UART = "/dev/serial0"


@dataclass(frozen=True, slots=True)
class SerialPort:
    """A port and the config key that names it."""

    path: str
    key: str
    user: str  # the bus or device that uses it

    @property
    def subject(self) -> str:
        return f"{self.path} ({self.user})"


def serial_ports(config: GatewayConfig) -> list[SerialPort]:
    """RTU buses and serial devices; Modbus TCP buses have no port here."""
    ports: list[SerialPort] = []
    for index, bus in enumerate(config.buses):
        if bus.type == "rtu" and bus.port:
            ports.append(SerialPort(bus.port, f"buses[{index}].port", f"bus {bus.id}"))
    for index, device in enumerate(config.devices):
        if isinstance(device, SerialDevice):
            ports.append(SerialPort(device.serial.port, f"devices[{index}].serial.port",
                                    f"device {device.id}"))
    return ports


async def check_serial_port(port: SerialPort) -> Finding:
    return await asyncio.to_thread(_probe, port)


def _probe(port: SerialPort) -> Finding:
    try:
        mode = os.stat(port.path).st_mode
    except FileNotFoundError:
        return fail(CHECK, port.subject, "no such device", _missing_fix(port))
    except OSError as exc:
        return fail(CHECK, port.subject, f"cannot look at it: {exc.strerror}",
                    f"check the path in {port.key}")
    if not stat.S_ISCHR(mode):
        return fail(CHECK, port.subject, "not a serial device (not a character device)",
                    f"set {port.key} to the adapter's device, e.g. a /dev/serial/by-id/ name")
    try:
        # non-blocking: a port whose modem lines are down would otherwise hang the open;
        # no controlling terminal: the gateway's process must not adopt the line
        fd = os.open(port.path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    except PermissionError:
        return fail(CHECK, port.subject, "permission denied for this user",
                    f"sudo usermod -aG dialout {getpass.getuser()} (then log in again or "
                    "restart the service)")
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return fail(CHECK, port.subject, "in use by another process",
                        f"find it with `sudo fuser -v {port.path}` (a serial console, "
                        "ModemManager or a second gateway) and stop it")
        return fail(CHECK, port.subject, f"cannot open it: {exc.strerror}",
                    f"check the adapter and the path in {port.key}; dmesg shows driver errors")
    try:
        # the gateway's drivers take this advisory lock (pyserial's exclusive=True)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return warn(CHECK, port.subject, "opens read/write, but another process holds its "
                    "lock: the gateway could not use it", f"if the gateway is not running, "
                    f"find the holder with `sudo fuser -v {port.path}` and stop it")
    finally:
        os.close(fd)  # releases the lock too
    return ok(CHECK, port.subject, "opens read/write")


def _missing_fix(port: SerialPort) -> str:
    if port.path == _PI_UART:
        return ("enable the Pi's UART: `sudo raspi-config nonint do_serial_hw 0` and "
                "`sudo raspi-config nonint do_serial_cons 1` (no login console on it), "
                "then reboot")
    return (f"plug in the adapter (ls /dev/serial/by-id/ lists what is there) or correct "
            f"{port.key}")
