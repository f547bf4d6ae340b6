"""Can the gateway reach its MQTT broker, and does the broker accept its login?"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Mapping

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from gateway.core.config import BrokerConfig
from gateway.link.tls import client_tls
from gateway.ops.doctor.finding import Finding, fail, ok, skip

CHECK = "broker"

# CONNACK refusals about who connects (MQTT 5 codes; paho maps 3.1.1's 4 and 5 onto them).
# Mosquitto answers a wrong password with "not authorised", not "bad user name or password".
_LOGIN_REFUSED = {134, 135, 4, 5}
_START = ("sudo systemctl start mosquitto (and `systemctl status mosquitto` for why it "
          "stopped)")


async def check_broker(config: BrokerConfig, client_id: str, env: Mapping[str, str],
                       timeout_s: float) -> Finding:
    """Connect like the gateway does, as `<client_id>-doctor` so its session stays up."""
    where = f"{config.host}:{config.port}" + (" (TLS)" if config.tls else "")
    if config.password_env and config.password_env not in env:
        return skip(CHECK, where, f"broker.password_env: {config.password_env} is not set")
    try:
        tls = client_tls(config)
    except (ssl.SSLError, OSError) as exc:
        return fail(CHECK, where, f"cannot load the TLS files: {exc}",
                    "broker.tls.ca_file, cert_file and key_file must be PEM files this user "
                    "can read")
    # a plain connection first: the socket and TLS errors keep their types there, which
    # aiomqtt reduces to a message
    problem = await _reach(config, tls, where)
    if problem is not None:
        return problem
    password = env.get(config.password_env) if config.password_env else None
    client = aiomqtt.Client(
        config.host, config.port, identifier=f"{client_id}-doctor", username=config.username,
        password=password, protocol=aiomqtt.ProtocolVersion.V5, tls_context=tls,
        timeout=timeout_s)
    try:
        async with client:
            pass
    except aiomqtt.MqttCodeError as exc:
        return _refused(config, where, exc.rc, str(exc))
    except aiomqtt.MqttError as exc:
        return fail(CHECK, where, f"the MQTT connection failed: {exc}",
                    f"see the broker's log (journalctl -u mosquitto); {_START}")
    login = f"as {config.username}" if config.username else "without a login"
    return ok(CHECK, where, f"connected {login}")


async def _reach(config: BrokerConfig, tls: ssl.SSLContext | None, where: str) -> Finding | None:
    try:
        _, writer = await asyncio.open_connection(
            config.host, config.port, ssl=tls, server_hostname=config.host if tls else None)
    except socket.gaierror as exc:
        return fail(CHECK, where, f"the host name {config.host} does not resolve: "
                    f"{exc.strerror}", "correct broker.host (or the name in /etc/hosts)")
    except ConnectionRefusedError:
        return fail(CHECK, where, "connection refused: nothing listens on that port",
                    f"{_START}; check broker.host and broker.port against the listener in "
                    "/etc/mosquitto/conf.d/")
    except ssl.SSLCertVerificationError as exc:
        return fail(CHECK, where, f"the broker's certificate is not trusted: "
                    f"{exc.verify_message}", _tls_fix(config, exc))
    except ssl.SSLError as exc:
        return fail(CHECK, where, f"the TLS handshake failed: {exc.reason or exc}",
                    "is the listener on broker.port a TLS one? Without TLS remove [broker.tls]; "
                    "with it, check cafile/certfile/keyfile in the broker's listener")
    except OSError as exc:
        return fail(CHECK, where, f"cannot connect: {exc.strerror or exc}",
                    "check the network path to broker.host and that broker.port is open")
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return None


def _tls_fix(config: BrokerConfig, exc: ssl.SSLCertVerificationError) -> str:
    if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        return (f"connect by a name the certificate holds: broker.host is {config.host}; "
                "or reissue the broker's certificate with that name in subjectAltName")
    ca = config.tls.ca_file if config.tls else None
    return (f"set broker.tls.ca_file to the CA that signed the broker's certificate (now: "
            f"{ca or 'the system CAs'}); compare with `openssl s_client -connect "
            f"{config.host}:{config.port} -showcerts`")


def _refused(config: BrokerConfig, where: str, rc: int | ReasonCode | None,
             message: str) -> Finding:
    code = rc.value if isinstance(rc, ReasonCode) else rc
    user = config.username
    if code not in _LOGIN_REFUSED:
        return fail(CHECK, where, f"the broker refused the connection: {message}",
                    "see the broker's log (journalctl -u mosquitto)")
    if user is None:
        return fail(CHECK, where, f"the broker refused an anonymous login: {message}",
                    "the broker wants a login: set broker.username and broker.password_env, "
                    "and add the user with `sudo mosquitto_passwd /etc/mosquitto/passwd scgw`")
    secret = config.password_env or "broker.password_env"
    return fail(CHECK, where, f"the broker refused user {user}: {message}",
                f"the password in {secret} must be {user}'s in the broker's password_file: "
                f"correct {secret}, or set it with `sudo mosquitto_passwd "
                f"/etc/mosquitto/passwd {user}` and restart mosquitto")
