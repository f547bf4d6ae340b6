"""`[[upstreams]]` in the configuration: each problem named by its key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config_file import parse_config
from gateway.core.problems import ConfigError

REPO = Path(__file__).resolve().parents[2]
KEY = "0123456789abcdef-key"


def raw(tmp_path: Path, *upstreams: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "p.yaml").write_text("rules: []\n")
    return {"site": "c1", "store": {"url": "http://127.0.0.1:9"},
            "upstreams": [{"policy": "p.yaml", **u} for u in upstreams]}


def problems(tmp_path: Path, env: dict[str, str], *upstreams: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw(tmp_path, *upstreams), tmp_path / "gw.toml", env)
    return [str(p) for p in caught.value.problems]


def test_a_valid_upstream_resolves_its_files_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    config = parse_config(raw(tmp_path, {
        "name": "city", "kind": "mqtt", "host": "h", "ca_file": "ca.crt", "username": "u",
        "password_env": "PW"}), tmp_path / "gw.toml", {"PW": "pw"})
    (city,) = config.upstreams
    assert city.kind == "mqtt"
    assert city.policy == tmp_path / "p.yaml"
    assert city.ca_file == tmp_path / "ca.crt"


def test_devices_carry_tags_for_the_policies(tmp_path: Path) -> None:
    config = parse_config({**raw(tmp_path), "devices": [{
        "id": "sos-3", "kind": "elder_button", "transport": "gpio", "gpio": {"pin": 5},
        "tags": ["fire-system", "building-3"]}]}, tmp_path / "gw.toml", {})
    assert config.devices[0].tags == ["fire-system", "building-3"]
    with pytest.raises(ConfigError) as caught:
        parse_config({**raw(tmp_path), "devices": [{
            "id": "p", "kind": "elder_button", "transport": "gpio", "gpio": {"pin": 5},
            "tags": ["no spaces"]}]}, tmp_path / "gw.toml", {})
    assert "devices[0].tags" in str(caught.value.problems[0])


def test_each_problem_is_named(tmp_path: Path) -> None:
    found = problems(
        tmp_path, {"SHORT": "short", "K": KEY},
        {"name": "a", "kind": "webhook", "url": "https://x/", "secret_env": "SECRET"},
        {"name": "a", "kind": "webhook", "url": "https://x/", "secret_env": "SHORT",
         "pseudonym_key_env": "K"},
        {"name": "b", "kind": "mqtt", "host": "h", "pseudonym_key_env": "K",
         "policy": "missing.yaml"})
    text = "\n".join(found)
    assert "upstreams[0].secret_env: environment variable SECRET is not set" in text
    assert "upstreams[1].name: duplicate upstream name 'a'" in text
    assert "upstreams[1].secret_env: the key in SHORT needs at least 16 bytes" in text
    assert "upstreams[2].policy: no such file: missing.yaml" in text
    assert "upstreams[2].pseudonym_key_env: K is another key's too" in text


@pytest.mark.parametrize(("upstream", "message"), [
    ({"name": "a", "kind": "webhook", "url": "http://x/", "secret_env": "S"},
     "upstreams.0.webhook.url"),
    ({"name": "a", "kind": "carrier-pigeon"}, "upstreams.0"),
    ({"name": "a", "kind": "mqtt", "host": "h", "username": "u"},
     "username and password_env go together"),
    ({"name": "a", "kind": "mqtt", "host": "h", "topic": "sc/#"}, "no wildcards"),
])
def test_schema_mistakes(tmp_path: Path, upstream: dict[str, Any], message: str) -> None:
    text = "\n".join(problems(tmp_path, {"S": KEY}, upstream))
    assert message in text.replace("[", ".").replace("]", ""), text


def test_run_refuses_a_policy_that_pseudonymises_without_a_key(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("rules:\n  - id: a\n    select: {}\n"
                                     "    pseudonymise: [device]\n")
    config = tmp_path / "gw.toml"
    config.write_text('site = "c1"\n[store]\nurl = "http://127.0.0.1:9"\n'
                      '[journal]\npath = "j.db"\n[[upstreams]]\nname = "d"\n'
                      'kind = "webhook"\npolicy = "p.yaml"\nurl = "https://x/"\n'
                      'secret_env = "SCGW_TEST_S"\n')
    result = subprocess.run([sys.executable, "-c", "from gateway.ops.entry import main; main()",
                             "run", "--config", str(config)], capture_output=True, text=True,
                            env={**os.environ, "SCGW_TEST_S": KEY}, timeout=60, check=False,
                            cwd=REPO)
    assert result.returncode == 2
    assert "upstreams[0] (d): its policy" in result.stderr
    assert "set pseudonym_key_env" in " ".join(result.stderr.split())
