"""The gateway configurations the benchmarks run (as the dicts a TOML file would give)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.core.config import StoreConfig

# the gateway's own store batch size, for the reports
STORE_BATCH: int = StoreConfig.model_fields["batch_size"].default

SITE = "bench"
IDLE_SITE = "bench-idle"
MAX_BUTTONS = 14  # buttons on GPIO 0-13, their LEDs on GPIO 14-27

DEBOUNCE_MS = 10
LONG_PRESS_S = 0.2  # a hold this long cancels: short, so a benchmark round clears fast


def button(index: int, *, led: bool = True) -> dict[str, Any]:
    gpio: dict[str, Any] = {"pin": index, "debounce_ms": DEBOUNCE_MS,
                            "long_press_s": LONG_PRESS_S}
    if led:
        gpio["led_pin"] = index + MAX_BUTTONS
    return {"id": button_id(index), "kind": "elder_button", "transport": "gpio",
            "location": {"building": str(1 + index // 4), "unit": "1", "floor": 1 + index % 4},
            "gpio": gpio}


def button_id(index: int) -> str:
    return f"elder-{index:02d}"


def smoke_sensor(index: int, heartbeat_s: float = 60) -> dict[str, Any]:
    """Telemetry only: three readings per message."""
    return {"id": f"smoke-{index:02d}", "kind": "smoke", "transport": "mqtt",
            "heartbeat_s": heartbeat_s,
            "location": {"building": str(1 + index // 4), "floor": 1 + index % 4},
            "mqtt": {"topic": f"bench/ingress/smoke-{index:02d}",
                     "readings": ["temperature_c", "obscuration_pct_ft", "battery_pct"]}}


def door_sensor(index: int, heartbeat_s: float = 60) -> dict[str, Any]:
    """Every message is a (non-alarm) event, door_opened or door_closed, plus a reading."""
    return {"id": f"door-{index:02d}", "kind": "access", "transport": "mqtt",
            "heartbeat_s": heartbeat_s,
            "location": {"building": str(1 + index // 4)},
            "mqtt": {"topic": f"bench/ingress/door-{index:02d}", "event_key": "state",
                     "events": {"open": "door_opened", "closed": "door_closed"},
                     "readings": ["door_open"]}}


def topics(devices: list[dict[str, Any]]) -> list[str]:
    return [str(d["mqtt"]["topic"]) for d in devices if d["transport"] == "mqtt"]


def gateway(site: str, workdir: Path, broker_port: int, store_url: str,
            devices: list[dict[str, Any]]) -> dict[str, Any]:
    """Defaults everywhere else: the store batches and flushes as it does in production."""
    return {
        "site": site,
        "gpio_factory": "mock",
        "broker": {"host": "127.0.0.1", "port": broker_port},
        "store": {"url": store_url},
        "journal": {"path": str(workdir / "journal.db")},
        # a bench gate publishes for a whole lane of gates, far beyond one device's rate
        "limits": {"device_rate_hz": 0},
        "devices": devices,
    }


# -- the pipeline: temperature gates publishing passages on MQTT ------------------------------

GATE_PREFIX = "bench/gates"
FEVER_RULE = Path(__file__).resolve().parent / "rules" / "fever.yaml"
_PACKS = Path(__file__).resolve().parent.parent / "rules" / "packs"


def temp_gate(index: int, prefix: str = GATE_PREFIX) -> dict[str, Any]:
    """A gate that publishes one JSON object per passage on its own topic."""
    gate = f"gate-{index:03d}"
    return {"id": gate, "kind": "temp_gate", "transport": "mqtt", "heartbeat_s": 300,
            "location": {"building": str(1 + index // 20), "unit": str(1 + index % 20 // 5)},
            "mqtt": {"topic": f"{prefix}/{gate}",
                     "readings": ["body_temp_c", "mask", "passage_count"]}}


def pipeline_rules() -> list[str]:
    """The fever rule, and the elder SOS rule for the buttons pressed under load."""
    return [str(FEVER_RULE), str(_PACKS / "elder_button.yaml"), str(_PACKS / "escalations.yaml")]
