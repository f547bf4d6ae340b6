"""Which handlers a topic goes to: MQTT filter matching, remembered per topic."""

from __future__ import annotations

from gateway.core.inbound import Handler

ROUTE_CACHE = 4096  # topics whose handlers are remembered


def matches(levels: list[str], pattern: list[str]) -> bool:
    """MQTT filter matching on pre-split levels (`+` one level, `#` the rest)."""
    if pattern and pattern[0] == "$share":
        pattern = pattern[2:]  # $share/<group>/<filter>
    if levels[0].startswith("$") and pattern and pattern[0] in ("+", "#"):
        return False  # a wildcard first level leaves out $SYS and the like (MQTT 4.7.2)
    for i, want in enumerate(pattern):
        if want == "#":
            return True
        if i >= len(levels) or (want != "+" and want != levels[i]):
            return False
    return len(levels) == len(pattern)


class Routes:
    """The subscriptions' handlers, in subscription order."""

    def __init__(self) -> None:
        self.filters: list[str] = []
        self._patterns: list[tuple[list[str], Handler]] = []
        self._routes: dict[str, list[Handler]] = {}  # topic -> handlers, filled as they come

    def add(self, topic_filter: str, handler: Handler) -> None:
        self.filters.append(topic_filter)
        self._patterns.append((topic_filter.split("/"), handler))
        self._routes.clear()

    def handlers(self, topic: str) -> list[Handler]:
        """The handlers of every subscription matching `topic`, in subscription order."""
        found = self._routes.get(topic)
        if found is None:
            # one dict lookup per message instead of matching every filter: a gateway
            # subscribes to one topic per MQTT device
            if len(self._routes) >= ROUTE_CACHE:
                self._routes.clear()  # bounded: topics come from outside
            levels = topic.split("/")
            found = [handler for pattern, handler in self._patterns
                     if matches(levels, pattern)]
            self._routes[topic] = found
        return found
