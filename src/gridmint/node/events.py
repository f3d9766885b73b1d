"""Event subscriptions with CometBFT's query language (the subset of ``=`` conditions joined by ``AND``).

A query such as ``tm.event = 'Tx' AND transfer.sender = 'gm1...'`` matches an event whose composite keys
(``<event type>.<attribute>``, plus ``tm.event``, ``tx.hash`` and ``tx.height``) hold every listed value.
Each subscriber has a bounded queue; one that falls behind is dropped, as CometBFT drops slow subscribers.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

MAX_QUERY_LENGTH = 512
MAX_CONDITIONS = 8
QUEUE_SIZE = 1_000

_CONDITION = re.compile(r"\s*([A-Za-z0-9_.\-]+)\s*=\s*(?:'([^']*)'|(\d+))\s*")

EventMap = dict[str, list[str]]


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    text: str
    conditions: tuple[tuple[str, str], ...]

    def matches(self, events: EventMap) -> bool:
        return all(value in events.get(key, ()) for key, value in self.conditions)


def parse_query(text: str) -> Query:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"a query is 1 to {MAX_QUERY_LENGTH} characters, such as tm.event = 'NewBlock'")
    conditions = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise QueryError(f"cannot read condition '{part[:80]}'; write key = 'value' joined by AND")
        conditions.append((match.group(1), match.group(2) if match.group(2) is not None else match.group(3)))
    if len(conditions) > MAX_CONDITIONS:
        raise QueryError(f"a query has at most {MAX_CONDITIONS} conditions")
    return Query(text, tuple(conditions))


@dataclass
class Subscription:
    query: Query
    queue: asyncio.Queue[tuple[EventMap, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(self, query: Query) -> Subscription:
        subscription = Subscription(query)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, events: EventMap, data: Any) -> None:
        for subscription in list(self._subscriptions):
            if not subscription.query.matches(events):
                continue
            try:
                subscription.queue.put_nowait((events, data))
            except asyncio.QueueFull:
                subscription.dropped = True
                self.unsubscribe(subscription)

    def __len__(self) -> int:
        return len(self._subscriptions)
