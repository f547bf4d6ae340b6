"""deploy/city/: the cluster's configuration is one nats-server accepts, the hub's and the
compound's examples load, and the compose file runs what they name."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import yaml

from gateway.core.upstream_config import JetStreamUpstream
from gateway.ops.private_servers import find_binary
from gateway.upstreams.policy import load_policy
from hub.config import load_hub_config

CITY = Path(__file__).resolve().parents[2] / "deploy" / "city"
SECRETS = {"NATS_HUB_PASSWORD": "hub-secret", "NATS_NORTH_PASSWORD": "north-secret"}


def test_the_cluster_configuration_is_valid() -> None:
    done = subprocess.run([find_binary("nats-server"), "-c", str(CITY / "nats.conf"), "-t"],
                          env={**os.environ, "NATS_SERVER_NAME": "nats-1", **SECRETS},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout + done.stderr


def test_the_hub_configuration_loads_with_its_secret() -> None:
    config = load_hub_config(CITY / "hub.toml", SECRETS)
    assert (config.stream.replicas, config.alerts.replicas) == (3, 3)
    assert config.nats.servers == [f"nats://nats-{n}:4222" for n in (1, 2, 3)]


def test_the_compounds_upstream_and_its_policy_load() -> None:
    raw = tomllib.loads((CITY / "gateway-upstream.toml").read_text())
    upstream = JetStreamUpstream.model_validate(raw["upstreams"][0])
    assert upstream.secret_envs() == {"pseudonym_key_env": "SCGW_CITY_PSEUDONYM_KEY",
                                      "nats.password_env": "SCGW_CITY_NATS_PASSWORD"}
    policy = load_policy(CITY / "city_hub.yaml")
    assert [r.id for r in policy.rules] == ["alarms", "alerts"]
    # what the hub needs of an alert leaves, and the device only as a pseudonym
    alerts = policy.rules[1]
    assert {"ts", "kind", "rule", "state", "severity"} <= set(alerts.fields)
    assert "device" not in alerts.fields
    assert alerts.pseudonymise == ("device",)


def test_the_compose_file_runs_the_hub_on_the_mounted_configuration() -> None:
    compose = yaml.safe_load((CITY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"nats-1", "nats-2", "nats-3", "victoria-metrics", "hub-init", "hub-1",
            "hub-2"} <= set(services)
    assert services["hub-init"]["command"][:2] == ["hub", "init"]
    for name in ("hub-1", "hub-2"):
        assert services[name]["command"][:4] == ["hub", "run", "--config",
                                                 "/etc/scgw/hub.toml"]
        assert "./hub.toml:/etc/scgw/hub.toml:ro" in services[name]["volumes"]
    assert {services[f"nats-{n}"]["environment"]["NATS_SERVER_NAME"] for n in (1, 2, 3)} == {
        "nats-1", "nats-2", "nats-3"}
