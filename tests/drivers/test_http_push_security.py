"""The push port over TLS (and mutual TLS), and signed pushes that cannot be replayed."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import aiohttp
import pytest

from simulators.http_pusher import HttpPusher, PushFault
from tests.drivers.push_rig import TOKENS, Rig, open_rig
from tests.helpers import eventually
from tests.pki import issue, make_ca

DOOR_FORCED = {"event.code": 20}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The compound's CA, the push port's certificate and a device's, and a device
    certificate from an unrelated CA."""
    base = tmp_path_factory.mktemp("pki")
    ca, _ = make_ca(base / "ca", "compound test CA")
    cert, key = issue(base / "ca", "push", "localhost", san="IP:127.0.0.1")
    device_cert, device_key = issue(base / "ca", "door", "door-h1")
    make_ca(base / "other", "someone else's CA")
    stranger_cert, stranger_key = issue(base / "other", "stranger", "door-h1")
    return {"ca": ca, "cert": cert, "key": key, "device_cert": device_cert,
            "device_key": device_key, "stranger_cert": stranger_cert,
            "stranger_key": stranger_key}


def _tls(pki: dict[str, Path], *, devices_ca: bool = False) -> dict[str, object]:
    tls: dict[str, object] = {"cert_file": str(pki["cert"]), "key_file": str(pki["key"])}
    if devices_ca:
        tls["ca_file"] = str(pki["ca"])
    return {"tls": tls}


def _in_clear_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "in clear" in r.getMessage()]


async def _failed_handshakes(rig: Rig, total: int) -> None:
    await eventually(lambda: rig.counters.get("http_connections_closed",
                                              reason="tls_handshake") == total,
                     what=f"{total} failed handshake(s) counted")


# -- TLS ----------------------------------------------------------------------------------

async def test_a_push_over_tls_is_accepted(tmp_path: Path, pki: dict[str, Path],
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with open_rig(tmp_path, http=_tls(pki), pusher={"ca_file": pki["ca"]}) as rig:
        assert rig.url.startswith("https://")
        connections = rig.receiver.connections
        assert connections is not None
        rig.intake.gate.clear()  # the push waits for the journal
        push = asyncio.create_task(rig.pushers["door-h1"].push(DOOR_FORCED), name="test.push")
        # the connection is known by its TLS transport: in a request, it cannot be evicted
        await eventually(lambda: connections.open == 1 and connections.idle == 0,
                         what="the push in its request")
        rig.intake.gate.set()
        result = await asyncio.wait_for(push, 5)
        assert result.status == 200
        assert connections.idle == 1  # kept alive, waiting for the next request
        assert result.body["accepted"] == [e.id for e in rig.intake.events]
        assert [e.type for e in rig.intake.events] == ["forced_open"]
        assert rig.counters.get("http_connections_closed") == 0
    assert _in_clear_warnings(caplog) == []


async def test_plain_http_to_the_tls_port_gets_no_service(
    tmp_path: Path, pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers")
    async with open_rig(tmp_path, http=_tls(pki)) as rig:
        plain = f"http://127.0.0.1:{rig.port}/push/door-h1"
        headers = {"Authorization": f"Bearer {TOKENS['door-h1']}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            for _ in range(5):
                with pytest.raises(aiohttp.ClientError):
                    async with session.post(plain, json={"event": {"code": 20}},
                                            headers=headers) as response:
                        await response.read()
        await _failed_handshakes(rig, 5)
        assert rig.intake.events == []
        assert rig.counters.get("rejected") == 0  # no request ever reached the handler
        connections = rig.receiver.connections
        assert connections is not None
        await eventually(lambda: connections.open == 0, what="connections released")
    failed = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage() for r in failed]  # paced, never a traceback
    assert failed[0].exc_info is None


async def test_mutual_tls_serves_only_devices_with_a_certificate_from_the_ca(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    async with open_rig(tmp_path, http=_tls(pki, devices_ca=True),
                        pusher={"ca_file": pki["ca"]}) as rig:
        with pytest.raises(aiohttp.ClientError):  # no certificate
            await rig.pushers["door-h1"].push(DOOR_FORCED)
        await _failed_handshakes(rig, 1)
        async with _door(rig, pki, "stranger") as stranger:
            with pytest.raises(aiohttp.ClientError):  # a certificate from another CA
                await stranger.push(DOOR_FORCED)
        await _failed_handshakes(rig, 2)
        assert rig.intake.events == []
        async with _door(rig, pki, "device") as door:
            result = await door.push(DOOR_FORCED)
        assert result.status == 200
        assert [e.type for e in rig.intake.events] == ["forced_open"]


async def test_connections_in_their_handshake_are_capped(tmp_path: Path,
                                                         pki: dict[str, Path]) -> None:
    async with open_rig(tmp_path, http={"max_connections_per_address": 2, **_tls(pki)}) as rig:
        connections = rig.receiver.connections
        assert connections is not None
        silent = [await asyncio.open_connection("127.0.0.1", rig.port) for _ in range(2)]
        await eventually(lambda: connections.open == 2, what="both admitted")
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert rig.counters.get("http_connections_refused", reason="per_address") == 1
        for _, silent_writer in silent:
            silent_writer.close()
        await _failed_handshakes(rig, 2)  # closed before a handshake: counted as failed
        await eventually(lambda: connections.open == 0, what="connections released")


def _door(rig: Rig, pki: dict[str, Path], who: str) -> HttpPusher:
    profile = rig.pushers["door-h1"].profile
    return HttpPusher(profile, rig.url, "door-h1", TOKENS["door-h1"], ca_file=pki["ca"],
                      client_cert=(pki[f"{who}_cert"], pki[f"{who}_key"]))


# -- signed pushes --------------------------------------------------------------------------

WINDOW_S = 300  # the default http.replay_window_s


async def test_a_signed_push_is_accepted_once(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with open_rig(tmp_path, auth="signed") as rig:
        door = rig.pushers["door-h1"]
        push = door.prepare(DOOR_FORCED)
        first = await door.send(push)
        assert first.status == 200
        again = await door.send(push)
        assert (again.status, again.body["error"]) == (401, "replayed")
        assert len(rig.intake.events) == 1
        assert rig.rejected("door-h1", "replayed") == 1
        assert rig.receiver.nonces.held("door-h1") == 1
        # the next push, with a nonce of its own, goes through
        assert (await door.push(DOOR_FORCED)).status == 200
        assert len(rig.intake.events) == 2
    assert _in_clear_warnings(caplog) == []  # no token travels


async def test_a_push_outside_the_window_is_stale(tmp_path: Path) -> None:
    async with open_rig(tmp_path, auth="signed") as rig:
        door = rig.pushers["door-h1"]
        now_s = rig.clock.now_ms() // 1000
        for at_s in (now_s - WINDOW_S - 1, now_s + WINDOW_S + 1):
            result = await door.send(door.prepare(DOOR_FORCED, at_s=at_s))
            assert (result.status, result.body["error"]) == (401, "stale")
        assert rig.rejected("door-h1", "stale") == 2
        # at the edge of the window, still accepted
        assert (await door.send(door.prepare(DOOR_FORCED, at_s=now_s - WINDOW_S))).status == 200
        assert len(rig.intake.events) == 1


async def test_a_wrong_signature_or_a_tampered_body_is_refused(tmp_path: Path) -> None:
    async with open_rig(tmp_path, auth="signed") as rig:
        door = rig.pushers["door-h1"]
        wrong = await door.push(DOOR_FORCED, fault=PushFault.WRONG_TOKEN)
        assert (wrong.status, wrong.body["error"]) == (401, "bad_signature")
        genuine = door.prepare({"event.code": 0})  # granted
        assert b'"code":0' in genuine.data
        tampered = dataclasses.replace(genuine,
                                       data=genuine.data.replace(b'"code":0', b'"code":20'))
        result = await door.send(tampered)
        assert (result.status, result.body["error"]) == (401, "bad_signature")
        assert rig.rejected("door-h1", "bad_signature") == 2
        assert rig.intake.events == []
        # a refused signature spends no nonce: the genuine push still goes through
        assert rig.receiver.nonces.held("door-h1") == 0
        assert (await door.send(genuine)).status == 200
        assert [e.type for e in rig.intake.events] == ["granted"]
        # a bearer token is no signature
        bearer = dataclasses.replace(genuine, headers={
            "Authorization": f"Bearer {TOKENS['door-h1']}"})
        result = await door.send(bearer)
        assert result.status == 401
        assert rig.rejected("door-h1", "unauthorised") == 1


async def test_too_many_pushes_within_the_window_are_refused_not_forgotten(
    tmp_path: Path
) -> None:
    async with open_rig(tmp_path, auth="signed", http={"max_nonces_per_device": 8}) as rig:
        door, gate = rig.pushers["door-h1"], rig.pushers["gate-h1"]
        sent = [door.prepare(DOOR_FORCED) for _ in range(9)]
        for push in sent[:8]:
            assert (await door.send(push)).status == 200
        async with (aiohttp.ClientSession() as session,
                    session.post(door.url, data=sent[8].data, headers=sent[8].headers) as over):
            assert over.status == 429
            assert 0 < int(over.headers["Retry-After"]) <= WINDOW_S
        assert rig.rejected("door-h1", "nonce_limit") == 1
        # nothing was forgotten to make room: every accepted push is still refused again
        for push in sent[:8]:
            assert (await door.send(push)).body["error"] == "replayed"
        assert len(rig.intake.events) == 8
        assert (await gate.push({"abnormal": 1})).status == 200  # another device is served
        rig.clock.advance(WINDOW_S + 1)
        assert (await door.push(DOOR_FORCED)).status == 200
        assert rig.receiver.nonces.held("door-h1") == 1


async def test_nonces_are_forgotten_once_their_push_is_stale(tmp_path: Path) -> None:
    async with open_rig(tmp_path, auth="signed") as rig:
        door, gate = rig.pushers["door-h1"], rig.pushers["gate-h1"]
        sent = [door.prepare(DOOR_FORCED) for _ in range(3)]
        for push in sent:
            assert (await door.send(push)).status == 200
        assert rig.receiver.nonces.held("door-h1") == 3
        rig.clock.advance(WINDOW_S + 1)
        # the replay is refused for its timestamp, the nonce is no longer needed for that
        replay = await door.send(sent[0])
        assert (replay.status, replay.body["error"]) == (401, "stale")
        assert (await gate.push({"abnormal": 1})).status == 200
        assert rig.receiver.nonces.held("door-h1") == 0
        assert rig.receiver.nonces.held("gate-h1") == 1
        assert len(rig.intake.events) == 4


async def test_bearer_devices_on_plain_http_are_named_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with open_rig(tmp_path) as rig:
        assert (await rig.pushers["door-h1"].push(DOOR_FORCED)).status == 200
    (warning,) = _in_clear_warnings(caplog)
    assert "door-h1, gate-h1" in warning
    assert "[http.tls]" in warning
    assert "signed" in warning
