"""Counters for everything the gateway rejects, drops or retries, and log-once bookkeeping.

Label values name things the configuration knows (devices, rules, reasons), never what an
input brought along: a topic or name from outside would make one counter, and one log-once
key, per distinct value, without bound.
"""

from __future__ import annotations

import logging
from collections import Counter

CounterKey = tuple[str, tuple[tuple[str, str], ...]]
UNKNOWN = "unknown"  # the label of anything the configuration does not name
DETAIL_CHARS = 300  # of a rejection's detail in the log


class Counters:
    """Named counters with labels, e.g. `inc("rejected", reason="bad_json", device=...)`."""

    def __init__(self) -> None:
        self._values: Counter[CounterKey] = Counter()
        self._logged: set[tuple[str, ...]] = set()
        self._last_logged: dict[tuple[str, ...], float] = {}
        # device -> reasons logged since its last good input: cleared in one step
        self._rejections_logged: dict[str, set[str]] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._values[(name, tuple(sorted(labels.items())))] += amount

    @staticmethod
    def key(name: str, **labels: str) -> CounterKey:
        """A counter's key, made once for a counter incremented per message (`inc_key`)."""
        return name, tuple(sorted(labels.items()))

    def inc_key(self, key: CounterKey, amount: int = 1) -> None:
        self._values[key] += amount

    def get(self, name: str, **labels: str) -> int:
        """The sum over every label set that includes `labels`."""
        want = set(labels.items())
        return sum(
            value
            for (n, lbls), value in self._values.items()
            if n == name and want.issubset(lbls)
        )

    def items(self) -> list[tuple[str, tuple[tuple[str, str], ...], int]]:
        return [(name, labels, value) for (name, labels), value in self._values.items()]

    def snapshot(self) -> dict[str, int]:
        return {
            name + ("{" + ",".join(f"{k}={v}" for k, v in lbls) + "}" if lbls else ""): value
            for (name, lbls), value in sorted(self._values.items())
        }

    def reject(self, logger: logging.Logger, device: str, reason: str, detail: str) -> None:
        """Count bad input from `device`; log it once per device and reason until it recovers.

        `device` is a configured device's id; the detail is cut to DETAIL_CHARS in the log.
        """
        self.inc("rejected", device=device, reason=reason)
        logged = self._rejections_logged.setdefault(device, set())
        if reason in logged:
            return
        logged.add(reason)
        logger.warning("%s: input rejected (%s): %s; repeats are counted until it recovers",
                       device, reason, clip(detail, DETAIL_CHARS))

    def recovered(self, device: str) -> None:
        """`device` sent good input again: its next rejection is logged again."""
        self._rejections_logged.pop(device, None)

    def log_once(
        self, logger: logging.Logger, key: tuple[str, ...], msg: str, *args: object
    ) -> None:
        """Log a warning the first time `key` is seen; later occurrences are only counted.

        `key` is made of names the configuration knows, as labels are.
        """
        if key in self._logged:
            return
        self._logged.add(key)
        logger.warning(msg, *args)

    def log_every(self, logger: logging.Logger, key: tuple[str, ...], now: float, every_s: float,
                  msg: str, *args: object) -> None:
        """Log a warning for `key` at most once every `every_s` seconds; `now` is monotonic.

        For what can repeat without end and without a device to recover (connections from
        anyone on the network): the message should carry the running count.
        """
        last = self._last_logged.get(key)
        if last is not None and now - last < every_s:
            return
        self._last_logged[key] = now
        logger.warning(msg, *args)

def clip(text: str, limit: int) -> str:
    """`text`, cut to about `limit` characters with a note of how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
