"""Who may do what on the compound's broker, derived from the gateway's configuration.

Three kinds of broker users, each limited to the topics its job needs:

- the gateway (`broker.username`) reads and writes its site's tree `sc/{site}/#`, reads
  every MQTT device's topic and writes the `mqtt://` notification targets of the contacts
  file;
- the duty console (one user) reads the site's tree and those targets, and writes nothing
  but alert acknowledgements (`sc/{site}/alerts/{rule}/{device}/ack`);
- every device with `transport = "mqtt"` gets a user named after its id that may publish
  to its own topic and nothing else, so one compromised sensor cannot raise another's
  alarm. A device with an availability topic (zigbee2mqtt's `<topic>/availability`) may
  publish there too, and the gateway reads it, and its bridge's `bridge/state` and
  `bridge/devices`.

`render_acl` writes these as a Mosquitto `acl_file`. The ACL cannot forbid the retain flag:
the gateway ignores retained device messages and acks instead (counted as `retained`). On
the LAN listener a client's id is its user name, so no user may be named like the
gateway's client id.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from drivers.mqtt_ingress import availability_topic
from drivers.profile import BUILTIN, ProfileLibrary
from drivers.zigbee2mqtt import DEVICES, STATE, bridge_base
from gateway.core.config import GatewayConfig, MqttDevice
from gateway.core.topics import ROOT, Topics

DEFAULT_CONSOLE_USER = "duty-console"
NOTIFY_SCHEME = "mqtt://"

# the password file separates user and hash with ':'; the ACL file reads to the end of a line
_USER = re.compile(r"^[^\s:#]{1,64}$")


class Role(enum.StrEnum):
    GATEWAY = "gateway"
    CONSOLE = "console"
    DEVICE = "device"


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerUser:
    """One broker login and the topic filters it may read, write, or both."""

    name: str
    role: Role
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    readwrite: tuple[str, ...] = ()


class BrokerUsersError(Exception):
    """The configuration cannot be turned into broker users; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def broker_users(config: GatewayConfig, console_user: str = DEFAULT_CONSOLE_USER,
                 notify_topics: Iterable[str] = ()) -> list[BrokerUser]:
    """The gateway, the duty console and one user per MQTT device, in that order.

    `notify_topics` are the topics of the contacts file's `mqtt://` targets.
    """
    if not config.broker.username:
        raise BrokerUsersError(["broker.username is not set: the gateway needs a broker "
                                "login (with broker.password_env)"])
    site_tree = f"{ROOT}/{config.site}/#"
    devices = [d for d in config.devices if isinstance(d, MqttDevice)]
    profiles = ProfileLibrary([BUILTIN, *config.profile_dirs])
    own = {d.id: (d.mqtt.topic, *filter(None, [availability_topic(d, profiles)]))
           for d in devices}  # what each device's publisher writes
    # what zigbee2mqtt says about itself, for the devices behind it
    bridges = sorted({f"{base}/{what}" for d in devices if len(own[d.id]) > 1
                      and (base := bridge_base(d.mqtt.topic)) is not None
                      for what in (STATE, DEVICES)})
    # what the gateway writes outside its own tree; the console reads it too
    outside = tuple(sorted({t for t in notify_topics
                            if not t.startswith(f"{ROOT}/{config.site}/")}))
    users = [
        BrokerUser(name=config.broker.username, role=Role.GATEWAY, readwrite=(site_tree,),
                   read=(*(t for d in devices for t in own[d.id]), *bridges), write=outside),
        BrokerUser(name=console_user, role=Role.CONSOLE, read=(site_tree, *outside),
                   write=(Topics(config.site).alert_ack_filter,)),
        *(BrokerUser(name=d.id, role=Role.DEVICE, write=own[d.id]) for d in devices),
    ]
    problems: list[str] = []
    for user in users[1:]:
        if user.name == config.client_id:
            # on the LAN listener a client's id is its user name: it would push the
            # gateway off the broker
            problems.append(f"{user.role} user {user.name!r} is the gateway's client id "
                            "(broker.client_id): rename one of them")
    seen: dict[str, BrokerUser] = {}
    for user in users:
        if not _USER.match(user.name):
            problems.append(f"{user.role} user {user.name!r}: a broker user name is 1 to 64 "
                            "characters without spaces, ':' or '#'")
        other = seen.setdefault(user.name, user)
        if other is not user:
            problems.append(f"{user.role} user {user.name!r} has the name of the "
                            f"{other.role} user: rename one of them")
        for topic in (*user.read, *user.write):
            if any(ord(c) < 32 for c in topic):
                problems.append(f"topic {topic!r} of {user.role} user {user.name!r} has a "
                                "control character and cannot be written to an ACL file")
    if problems:
        raise BrokerUsersError(problems)
    return users


def notify_topics(contacts_file: Path | None) -> list[str]:
    """The topics of the `mqtt://` targets in a contacts file (none without a file)."""
    if contacts_file is None:
        return []
    from rules.contacts import load_contacts

    contacts = load_contacts(contacts_file)
    targets = [t for ts in contacts.groups.values() for t in ts]
    targets += [t for groups in contacts.devices.values() for ts in groups.values() for t in ts]
    return sorted({t.removeprefix(NOTIFY_SCHEME) for t in targets
                   if t.startswith(NOTIFY_SCHEME)})


def render_acl(users: Sequence[BrokerUser], source: str = "") -> str:
    """A Mosquitto acl_file. Nothing precedes the first `user` line, so a client without
    a user name (refused anyway: allow_anonymous is false) would be granted nothing."""
    lines = ["# Mosquitto ACL rendered by `scgw broker acl`" +
             (f" from {source}" if source else "") + ": every run replaces this file."]
    for user in users:
        lines += ["", f"# {user.role}", f"user {user.name}"]
        lines += [f"topic readwrite {t}" for t in user.readwrite]
        lines += [f"topic read {t}" for t in user.read]
        lines += [f"topic write {t}" for t in user.write]
    return "\n".join(lines) + "\n"
