"""Configuration of NB-IoT devices behind OneNET and CTWing: errors name the device and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.problems import ConfigError
from tests.helpers import make_config

HTTP = {"host": "127.0.0.1", "port": 18080}
ONENET = {"token": "onenet-instance-token"}
CTWING = {"token": "ctwing-subscription-secret-0123"}


def _smoke(**onenet: Any) -> dict[str, Any]:
    return {"id": "smoke-1", "kind": "smoke", "transport": "onenet",
            "profile": "onenet-smoke", "onenet": onenet}


def _problems(tmp_path: Path, devices: list[dict[str, Any]], **extra: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, site="c", devices=devices, **extra)
    return str(caught.value)


def test_a_platform_device_needs_a_name_its_section_and_the_http_port(tmp_path: Path
                                                                        ) -> None:
    text = _problems(tmp_path, [_smoke()])
    assert "devices[0].onenet" in text
    assert "give device_name or imei" in text
    assert "need an [onenet] section" in text
    assert "need an [http] section" in text
    assert "smoke-1" in text


def test_profiles_must_speak_what_the_platform_passes(tmp_path: Path) -> None:
    wrong = {"id": "cover-1", "kind": "manhole", "transport": "onenet",
             "profile": "ctwing-manhole", "onenet": {"device_name": "c1"}}
    text = _problems(tmp_path, [wrong], http=HTTP, onenet=ONENET)
    assert "profile ctwing-manhole speaks serial, not onenet" in text
    # CTWing passes either: a byte layout for APPdata, or a json mapping
    config = make_config(tmp_path, site="c", http=HTTP, ctwing=CTWING, devices=[
        {"id": "cover-2", "kind": "manhole", "transport": "ctwing", "profile": "ctwing-manhole",
         "ctwing": {"imei": "862592051651472"}},
        {"id": "smoke-2", "kind": "smoke", "transport": "ctwing", "profile": "ctwing-smoke",
         "ctwing": {"device_id": "acf7baaee65e431eadfb8f5fe50e8b81"}}])
    assert [d.id for d in config.devices] == ["cover-2", "smoke-2"]


@pytest.mark.parametrize(("section", "value", "key"), [
    ("onenet", {"token": "abc"}, "onenet.token"),
    ("onenet", {"token": "onenet-instance-token", "aes_key": "short"}, "onenet.aes_key"),
    ("ctwing", {"token": "short"}, "ctwing.token"),
    ("ctwing", {"token": "has/slash/in/it/0123456789"}, "ctwing.token"),
])
def test_weak_or_malformed_secrets_are_refused(tmp_path: Path, section: str,
                                               value: dict[str, Any], key: str) -> None:
    text = _problems(tmp_path, [_smoke(device_name="s1")], http=HTTP, **{section: value})
    assert key in text


def test_two_devices_cannot_be_the_same_platform_device(tmp_path: Path) -> None:
    twin = dict(_smoke(device_name="s1"), id="smoke-2")
    text = _problems(tmp_path, [_smoke(device_name="s1"), twin], http=HTTP, onenet=ONENET)
    assert "devices[1].onenet.device_name" in text
    assert "already used by device smoke-1" in text
    covers = [{"id": f"cover-{n}", "kind": "manhole", "transport": "ctwing",
               "profile": "ctwing-manhole", "ctwing": {"device_id": "abc"}} for n in (1, 2)]
    text = _problems(tmp_path, covers, http=HTTP, ctwing=CTWING)
    assert "devices[1].ctwing.device_id" in text
