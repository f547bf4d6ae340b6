"""Acknowledgements from the duty office: `{"by": "..."}` on `sc/{site}/alerts/{rule}/{device}/ack`.

An ack is journalled only when it is news and names an alert that is firing: a retained
ack (kept by the broker from before), one larger than `broker.max_payload_bytes`, one
that is not `{"by": "<1 to 128 characters>"}`, one for a rule the gateway does not have
and one for an alert that is not firing are refused. Each is counted in
`ack_rejected{rule, reason}`, where `rule` is a configured rule's id or `unknown`, and
logged once per rule and reason: an ack topic is made up by whoever publishes it, and
naming counters after it would grow them without bound.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec

from drivers.json_map import MalformedJsonError, parse_json, shown
from gateway.core.counters import UNKNOWN, Counters
from gateway.core.inbound import Inbound
from gateway.core.model import AlertState
from gateway.core.topics import Topics
from rules.engine import RuleEngine

log = logging.getLogger(__name__)

MAX_BY = 128  # characters of `by`: it is shown to everyone and kept with the alert
MAX_REASON = 500  # characters of a reason for resolving by hand


class AckPayload(msgspec.Struct):
    by: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BY)]


class AckRefusedError(ValueError):
    """An acknowledgement that is not applied; `reason` is its counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class AckDesk:
    """Turns ack messages into journalled acknowledgements, refusing what is not one."""

    def __init__(self, topics: Topics, rules: RuleEngine,
                 journal: Callable[..., Awaitable[None]], counters: Counters,
                 max_payload_bytes: int) -> None:
        self._topics = topics
        self._rules = rules
        self._journal = journal
        self._counters = counters
        self._max_payload = max_payload_bytes

    def handle(self, message: Inbound) -> Awaitable[None] | None:
        """The journalling of the ack in `message`, or None when it is refused."""
        parsed = self._topics.parse_ack(message.topic)
        if parsed is None:
            return None
        rule, device = parsed
        label = rule if self._rules.knows(rule) else UNKNOWN
        try:
            by = self._check(message, rule, device, label)
        except AckRefusedError as exc:
            self._counters.inc("ack_rejected", rule=label, reason=exc.reason)
            self._counters.log_once(log, ("ack", label, exc.reason),
                                    "ack for rule %s rejected (%s): %s; repeats are counted",
                                    label, exc.reason, exc)
            return None
        return self._journal(rule, device, by)

    async def acknowledge(self, rule: str, device: str, by: str) -> None:
        """An acknowledgement from the console: refused (AckRefusedError, counted) as an MQTT
        ack would be when its rule is unknown or its alert is not firing."""
        label = rule if self._rules.knows(rule) else UNKNOWN
        try:
            if not 1 <= len(by) <= MAX_BY:
                raise AckRefusedError("malformed", f"by: 1 to {MAX_BY} characters")
            self._firing(rule, device, label)
        except AckRefusedError as exc:
            self._counters.inc("ack_rejected", rule=label, reason=exc.reason)
            raise
        await self._journal(rule, device, by)

    async def resolve(self, rule: str, device: str, by: str, reason: str) -> None:
        """A person resolves an active alert by hand, giving a reason: refused
        (AckRefusedError, counted in `ack_rejected`) unless its rule allows that."""
        label = rule if self._rules.knows(rule) else UNKNOWN
        try:
            if not 1 <= len(by) <= MAX_BY:
                raise AckRefusedError("malformed", f"by: 1 to {MAX_BY} characters")
            if not 1 <= len(reason) <= MAX_REASON:
                raise AckRefusedError("malformed", f"reason: 1 to {MAX_REASON} characters")
            if label == UNKNOWN:
                raise AckRefusedError("unknown_rule", f"the gateway has no rule {shown(rule)}")
            if not self._rules.resolvable(rule):
                raise AckRefusedError("not_by_hand", f"rule {rule} does not let a person "
                                      "resolve its alerts (clear.by_hand)")
            if not any(a.rule == rule and a.device == device for a in self._rules.active()):
                raise AckRefusedError("not_firing", f"the alert of {rule} on {shown(device)} "
                                      "is not active")
        except AckRefusedError as exc:
            self._counters.inc("ack_rejected", rule=label, reason=exc.reason)
            raise
        await self._journal(rule, device, by, reason=reason)

    def _check(self, message: Inbound, rule: str, device: str, label: str) -> str:
        if message.retain:
            raise AckRefusedError("retained", "a retained ack is an old one: only an ack "
                                  "sent while the alert fires acknowledges it")
        payload = message.payload
        if not isinstance(payload, bytes | bytearray | str) or not payload:
            raise AckRefusedError("malformed", 'empty payload (expected {"by": "..."})')
        if len(payload) > self._max_payload:
            raise AckRefusedError("payload_too_large", f"{len(payload)} bytes, more than "
                                  f"broker.max_payload_bytes ({self._max_payload})")
        try:
            by = msgspec.convert(parse_json(payload), AckPayload).by
        except (MalformedJsonError, msgspec.ValidationError) as exc:
            raise AckRefusedError("malformed", f'{exc} (expected {{"by": "<1 to {MAX_BY} '
                                  'characters>"}})') from exc
        self._firing(rule, device, label)
        return by

    def _firing(self, rule: str, device: str, label: str) -> None:
        if label == UNKNOWN:
            raise AckRefusedError("unknown_rule", f"the gateway has no rule {shown(rule)}")
        alert = next((a for a in self._rules.active() if a.rule == rule and a.device == device),
                     None)
        if alert is None or alert.state is not AlertState.FIRING:
            state = "acknowledged already" if alert is not None else "not active"
            raise AckRefusedError("not_firing", f"the alert of {rule} on {shown(device)} is "
                                  f"{state}")
