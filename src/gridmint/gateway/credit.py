"""How much a consumer may still spend through this gateway: its credit line on chain less what the ledger owes and
has not settled yet. A line past its expiry block is spent.

The line is read from the chain once before a consumer's first request; after that, a reading older than
``ttl_s`` is refreshed in the background while requests go on with the reading they have. Requests never queue
behind a chain read: a busy gateway's worker thread can take seconds to get one through, and every request of
that consumer used to wait for it. What keeps the stale reading safe is that only this gateway's settlements take
from the line, and each one lowers the reading by exactly what the chain took (``settled``); top-ups only raise it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from gridmint.chain.credit import NO_LINE
from gridmint.chain.errors import ChainError
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.ledger import Ledger

log = logging.getLogger("gridmint.gateway")


def read_line(client: ChainClient, consumer: str, gateway: str) -> tuple[int, int] | None:
    """(balance, expiry block) of ``consumer``'s credit line with ``gateway``; None when it has none."""
    try:
        line = client.query(f"/credit/line/{consumer}/{gateway}")
    except ChainError as error:
        if error.kind == NO_LINE:
            return None
        raise
    return int(line["balance"]), int(line["expires"])


class CreditBook:
    def __init__(self, client: ChainClient, gateway: str, ledger: Ledger, ttl_s: float = 2.0) -> None:
        self.client = client
        self.gateway = gateway
        self.ledger = ledger
        self.ttl_s = ttl_s
        self._lines: dict[str, tuple[int, float]] = {}  # consumer -> (spendable on chain, read at)
        self._first_reads: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        # Bumped by each settlement: a refresh that began before one may have read the line before the chain took
        # from it, so its reading is dropped rather than let it undo the settlement's adjustment.
        self._settlements: dict[str, int] = {}

    def _fetch(self, consumer: str) -> int:
        line = read_line(self.client, consumer, self.gateway)
        if line is None:
            return 0
        balance, expires = line
        return 0 if self.client.height() >= expires else balance

    async def available(self, consumer: str) -> int:
        reading = self._lines.get(consumer)
        if reading is None:
            lock = self._first_reads.setdefault(consumer, asyncio.Lock())
            async with lock:  # one chain read per consumer at a time
                reading = self._lines.get(consumer)
                if reading is None:
                    settlements = self._settlements.get(consumer, 0)
                    spendable = await asyncio.to_thread(self._fetch, consumer)
                    # A settlement meanwhile: the read may predate it, so it is used once and read again at once.
                    read_at = time.monotonic() if self._settlements.get(consumer, 0) == settlements else -math.inf
                    reading = self._lines[consumer] = (spendable, read_at)
        elif time.monotonic() - reading[1] > self.ttl_s and consumer not in self._refreshing:
            self._refreshing[consumer] = asyncio.create_task(self._refresh(consumer))
        return reading[0] - self.ledger.owed(consumer)

    async def _refresh(self, consumer: str) -> None:
        settlements = self._settlements.get(consumer, 0)
        try:
            spendable = await asyncio.to_thread(self._fetch, consumer)
            if self._settlements.get(consumer, 0) == settlements:
                self._lines[consumer] = (spendable, time.monotonic())
        except (ChainError, OSError) as error:
            log.warning("Could not re-read %s's credit line (%s); its last reading stands until the next try.",
                        consumer, error)
        finally:
            del self._refreshing[consumer]

    def settled(self, consumer: str, charged: int) -> None:
        """A settlement took ``charged`` grains (usage and fees, as the chain counts them) from the consumer's line:
        lower the reading by as much, since the ledger no longer owes it, and have it read again."""
        self._settlements[consumer] = self._settlements.get(consumer, 0) + 1
        reading = self._lines.get(consumer)
        if reading is not None:
            self._lines[consumer] = (reading[0] - charged, -math.inf)
