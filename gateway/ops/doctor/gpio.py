"""Can the gateway drive the Pi's GPIO pins for its buttons and LEDs?"""

from __future__ import annotations

import asyncio
import getpass
import os
import warnings

from gateway.core.config import GatewayConfig, GpioDevice
from gateway.ops.doctor.finding import Finding, fail, ok, skip, warn

CHECK = "gpio"
CHIP = "/dev/gpiochip0"

_LIBRARY_FIX = ("on the Pi: sudo apt install python3-lgpio, and create the venv with "
                "`python3 -m venv --system-site-packages` so it sees lgpio; to run without "
                'GPIO, set gpio_factory = "mock" (simulated pins)')


async def check_gpio(config: GatewayConfig) -> Finding:
    pins = [d.gpio.pin for d in config.devices if isinstance(d, GpioDevice)]
    if not pins:
        return skip(CHECK, "pins", "no GPIO devices configured")
    subject = "pins " + ", ".join(map(str, pins))
    if config.gpio_factory == "mock":
        return skip(CHECK, subject, 'gpio_factory = "mock": the pins are simulated')
    return await asyncio.to_thread(_probe, subject)


def _probe(subject: str) -> Finding:
    from gpiozero.devices import Device

    with warnings.catch_warnings(record=True) as fallbacks:
        warnings.simplefilter("always")
        try:
            # the factory the gateway gets (see gateway.supervisor): gpiozero's default,
            # or the one named by GPIOZERO_PIN_FACTORY
            factory = Device._default_pin_factory()
        except Exception as exc:
            chip = _chip_state()
            reasons = "; ".join(str(w.message) for w in fallbacks) or str(exc)
            found = f"no GPIO pin library could be loaded ({reasons}); {CHIP}: {chip}"
            if chip == "permission denied":
                return fail(CHECK, subject, found, _group_fix())
            return fail(CHECK, subject, found, _LIBRARY_FIX)
    name = type(factory).__name__
    factory.close()
    if name == "NativeFactory":
        return warn(CHECK, subject, "only gpiozero's experimental native pin library works "
                    f"({'; '.join(str(w.message) for w in fallbacks)})", _LIBRARY_FIX)
    return ok(CHECK, subject, f"pin library {name}")


def _chip_state() -> str:
    try:
        fd = os.open(CHIP, os.O_RDWR)
    except FileNotFoundError:
        return "missing (not a Raspberry Pi, or its GPIO driver is not loaded)"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return f"cannot open ({exc.strerror})"
    os.close(fd)
    return "accessible"


def _group_fix() -> str:
    return (f"sudo usermod -aG gpio {getpass.getuser()} (then log in again or restart the "
            "service)")
