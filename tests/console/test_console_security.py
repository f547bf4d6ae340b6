"""The console refuses what has no session, no CSRF token or no right to act, and limits
login attempts per user and per address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from aiohttp import web
from yarl import URL

from gateway.console.accounts import Role
from gateway.console.server import ACCOUNT_CHECK_S, CSRF_HEADER
from gateway.console.sessions import LOGIN_FAILURES, LOGIN_WINDOW_S, LoginLimit
from gateway.core.clock import ManualClock
from gateway.core.model import AlertState
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.console.rig import (
    OFFICER,
    PASSWORD,
    VIEWER,
    add_user,
    base_url,
    client,
    console_config,
    csrf_token,
    login,
)
from tests.helpers import eventually, running, unique_site

# every route of the console but the login page and its static files
GUARDED = [("GET", "/"), ("GET", "/devices"), ("GET", "/shift"), ("GET", "/api/board"),
           ("GET", "/api/devices"), ("GET", "/api/shift"), ("GET", "/api/stream"),
           ("POST", "/logout"), ("POST", "/api/alerts/x/ack"), ("POST", "/api/alerts/x/note"),
           ("POST", "/api/alerts/x/resolve"), ("POST", "/api/language")]


@pytest.fixture
async def gateway(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Gateway]:
    clock = ManualClock()
    config = console_config(tmp_path, site=unique_site("sec"), broker_port=mosquitto.port,
                            store_url="http://127.0.0.1:9")
    add_user(config, OFFICER)
    add_user(config, VIEWER, Role.VIEWER)
    async with running(Gateway(config, clock=clock)) as gw:
        await eventually(lambda: gw.console.ready.is_set(), what="console")
        yield gw


async def _sos(gateway: Gateway) -> str:
    """Press the elder's button; the id of the alert it raises."""
    assert isinstance(gateway.clock, ManualClock)
    elder = SimulatedElder(gateway.pin_factory, 17, gateway.clock)
    elder.down()
    gateway.clock.advance(0.3)
    elder.up()
    await eventually(lambda: len(gateway.rules.active()) == 1, what="the SOS")
    return gateway.rules.active()[0].id


def test_the_list_covers_every_guarded_route(gateway: Gateway) -> None:
    app: web.Application = gateway.console.app()
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None}
    guarded = {(m, p.replace("/x/", "/{id}/")) for m, p in GUARDED}
    assert routes - guarded == {("GET", "/login"), ("POST", "/login"), ("GET", "/static/{name}"),
                                ("HEAD", "/login"), ("HEAD", "/"), ("HEAD", "/devices"),
                                ("HEAD", "/shift"), ("HEAD", "/api/board"),
                                ("HEAD", "/api/devices"), ("HEAD", "/api/shift"),
                                ("HEAD", "/api/stream"), ("HEAD", "/static/{name}")}


async def test_without_a_session_every_page_and_api_call_is_refused(gateway: Gateway) -> None:
    base = base_url(gateway.config)
    async with client() as session:
        for cookie in (None, "made-up"):
            if cookie is not None:
                session.cookie_jar.update_cookies({"scgw_session": cookie})
            for method, path in GUARDED:
                async with session.request(method, base + path) as response:
                    assert response.status == 401, (method, path, cookie)
                    if method == "GET" and not path.startswith("/api/"):
                        assert 'id="login-form"' in await response.text()  # the login page
        async with session.get(base + "/static/console.js") as response:
            assert response.status == 200  # the page's own script, nothing secret
    assert gateway.counters.get("console_refused", reason="no_session") == 2 * len(GUARDED)


async def test_a_forged_post_without_the_csrf_token_is_refused(gateway: Gateway) -> None:
    alert_id = await _sos(gateway)
    base = base_url(gateway.config)
    async with client() as session:
        assert await login(session, base, OFFICER) == 303
        token = await csrf_token(session, base)
        for headers in ({}, {CSRF_HEADER: "forged"}, {CSRF_HEADER: ""}):
            async with session.post(f"{base}/api/alerts/{alert_id}/ack", json={"note": "x"},
                                    headers=headers) as response:
                assert response.status == 403, headers
        assert gateway.rules.active()[0].state is AlertState.FIRING
        async with session.post(f"{base}/api/alerts/{alert_id}/ack", json={"note": ""},
                                headers={CSRF_HEADER: token}) as response:
            assert response.status == 200, await response.text()
        assert gateway.rules.active()[0].state is AlertState.ACKNOWLEDGED
        assert gateway.rules.active()[0].by == OFFICER
    assert gateway.counters.get("console_refused", reason="csrf") == 3


async def test_a_login_form_without_its_token_is_refused(gateway: Gateway) -> None:
    base = base_url(gateway.config)
    async with client() as session, session.post(
            base + "/login", data={"name": OFFICER, "password": PASSWORD},
            allow_redirects=False) as response:
        assert response.status == 403
        assert "scgw_session" not in {c.key for c in session.cookie_jar}


async def test_a_viewer_sees_but_cannot_act(gateway: Gateway) -> None:
    alert_id = await _sos(gateway)
    base = base_url(gateway.config)
    async with client() as session:
        assert await login(session, base, VIEWER) == 303
        token = await csrf_token(session, base)
        async with session.get(base + "/api/board") as response:
            assert [a["id"] for a in (await response.json())["alerts"]] == [alert_id]
        for action in ("ack", "note", "resolve"):
            async with session.post(f"{base}/api/alerts/{alert_id}/{action}",
                                    json={"note": "mine"},
                                    headers={CSRF_HEADER: token}) as response:
                assert response.status == 403
    assert gateway.rules.active()[0].state is AlertState.FIRING


async def test_the_sixth_wrong_password_in_a_minute_is_refused_unchecked(
        gateway: Gateway) -> None:
    base = base_url(gateway.config)
    async with client() as session:
        for _ in range(LOGIN_FAILURES):
            assert await login(session, base, OFFICER, "wrong-password-1") == 401
        # the right password now: refused all the same, since it is not looked at
        assert await login(session, base, OFFICER) == 429
        assert gateway.counters.get("console_logins", result="failed") == LOGIN_FAILURES
        assert gateway.counters.get("console_logins", result="limited") == 1
        assert isinstance(gateway.clock, ManualClock)
        gateway.clock.advance(LOGIN_WINDOW_S)
        assert await login(session, base, OFFICER) == 303


async def test_wrong_passwords_for_many_names_limit_the_address(gateway: Gateway) -> None:
    base = base_url(gateway.config)
    async with client() as session:
        for n in range(LOGIN_FAILURES):
            assert await login(session, base, f"guess{n}", "wrong-password-1") == 401
        assert await login(session, base, OFFICER) == 429


def test_one_users_failures_from_many_addresses_limit_the_user() -> None:
    limit = LoginLimit()
    for n in range(LOGIN_FAILURES):
        assert not limit.refused(OFFICER, f"10.0.0.{n}", 100.0)
        limit.failed(OFFICER, f"10.0.0.{n}", 100.0)
    assert limit.refused(OFFICER, "10.0.0.99", 100.0)
    assert not limit.refused(VIEWER, "10.0.0.99", 100.0)
    assert not limit.refused(OFFICER, "10.0.0.99", 100.0 + LOGIN_WINDOW_S)


async def test_a_session_ends_at_logout(gateway: Gateway) -> None:
    base = base_url(gateway.config)
    async with client() as session:
        assert await login(session, base, OFFICER) == 303
        token = await csrf_token(session, base)
        cookie = session.cookie_jar.filter_cookies(URL(base))["scgw_session"].value
        async with session.post(base + "/logout", headers={CSRF_HEADER: token}) as response:
            assert response.status == 200
    async with client() as other:
        other.cookie_jar.update_cookies({"scgw_session": cookie})
        async with other.get(base + "/api/board") as response:
            assert response.status == 401


async def test_a_damaged_accounts_file_refuses_logins_and_says_why(gateway: Gateway) -> None:
    from gateway.console.accounts import users_path

    users_path(gateway.config).write_text("{not json")
    base = base_url(gateway.config)
    async with client() as session:
        assert await login(session, base, OFFICER) == 503
    assert gateway.counters.get("console_refused", reason="accounts_unreadable") == 1
    assert not gateway.stopping.is_set()


async def test_an_open_board_ends_when_its_account_is_removed(gateway: Gateway) -> None:
    from gateway.console.accounts import Accounts, users_path

    base = base_url(gateway.config)
    async with client() as session:
        assert await login(session, base, OFFICER) == 303
        async with session.get(base + "/api/stream") as stream:
            assert stream.status == 200
            assert await stream.content.read(64)  # the board, at once
            await asyncio.to_thread(Accounts(users_path(gateway.config)).remove, OFFICER)
            async with asyncio.timeout(2 * ACCOUNT_CHECK_S + 3):
                while await stream.content.read(65536):
                    pass  # the board goes on until the stream ends
        async with session.get(base + "/api/board") as response:
            assert response.status == 401


async def test_open_boards_are_bounded(gateway: Gateway,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.console.server.MAX_STREAMS", 2)
    base = base_url(gateway.config)
    async with client() as session:
        assert await login(session, base, OFFICER) == 303
        async with session.get(base + "/api/stream") as one, \
                session.get(base + "/api/stream") as two:
            assert (one.status, two.status) == (200, 200)
            async with session.get(base + "/api/stream") as three:
                assert three.status == 503
    assert gateway.counters.get("console_refused", reason="too_many_streams") == 1


async def test_logins_logouts_and_refused_logins_are_journalled(gateway: Gateway) -> None:
    """Each is committed before it is answered, read back from the journal's own rows."""
    from gateway.console.access_log import KEY, AccessEntry, AccessLog

    base = base_url(gateway.config)
    async with client() as session:
        assert await login(session, base, OFFICER, "wrong-password-1") == 401
        for _ in range(LOGIN_FAILURES - 1):
            assert await login(session, base, VIEWER, "wrong-password-1") == 401
        assert await login(session, base, VIEWER) == 429  # the address's limit
        assert await login(session, base, VIEWER) == 429  # within the minute: once
        assert isinstance(gateway.clock, ManualClock)
        gateway.clock.advance(LOGIN_WINDOW_S)
        assert await login(session, base, OFFICER) == 303
        token = await csrf_token(session, base)
        async with session.post(base + "/logout", headers={CSRF_HEADER: token}) as response:
            assert response.status == 200
    rows = await gateway.journal.read_states(KEY)
    entries = [msgspec.json.decode(rows[k], type=AccessEntry) for k in sorted(rows)]
    assert [(e.what, e.user, e.role) for e in entries] == [
        ("login_failed", OFFICER, None),
        *[("login_failed", VIEWER, None)] * (LOGIN_FAILURES - 1),
        ("login_limited", VIEWER, None),
        ("login", OFFICER, "officer"),
        ("logout", OFFICER, "officer")]
    assert {e.address for e in entries} == {"127.0.0.1"}
    assert entries[-2].ts - entries[0].ts == LOGIN_WINDOW_S * 1000  # the gateway's clock
    # what the gateway reads at its next start
    again = AccessLog(gateway.journal, gateway.clock, keep_days=30)
    await again.load()
    assert again.entries == entries
    assert [e.what for e in again.since(entries[-2].ts)] == ["login", "logout"]
