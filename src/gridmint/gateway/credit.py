"""How much a consumer may still spend through this gateway: its credit line on chain (re-read at most every
``ttl_s``) less what the ledger owes and has not settled yet. A line past its expiry block is spent."""

from __future__ import annotations

import asyncio
import time

from gridmint.chain.credit import NO_LINE
from gridmint.chain.errors import ChainError
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.ledger import Ledger


class CreditBook:
    def __init__(self, client: ChainClient, gateway: str, ledger: Ledger, ttl_s: float = 2.0) -> None:
        self.client = client
        self.gateway = gateway
        self.ledger = ledger
        self.ttl_s = ttl_s
        self._lines: dict[str, tuple[int, float]] = {}  # consumer -> (spendable on chain, fetched at)
        self._locks: dict[str, asyncio.Lock] = {}

    def _fetch(self, consumer: str) -> int:
        try:
            line = self.client.query(f"/credit/line/{consumer}/{self.gateway}")
        except ChainError as error:
            if error.kind == NO_LINE:
                return 0
            raise
        return 0 if self.client.height() >= int(line["expires"]) else int(line["balance"])

    async def available(self, consumer: str) -> int:
        cached = self._lines.get(consumer)
        if cached is None or time.monotonic() - cached[1] > self.ttl_s:
            lock = self._locks.setdefault(consumer, asyncio.Lock())
            async with lock:  # one chain read per consumer at a time
                cached = self._lines.get(consumer)
                if cached is None or time.monotonic() - cached[1] > self.ttl_s:
                    cached = (await asyncio.to_thread(self._fetch, consumer), time.monotonic())
                    self._lines[consumer] = cached
        return cached[0] - self.ledger.owed(consumer)

    def forget(self, consumer: str) -> None:
        """Read the line again next time (after a settlement moved it)."""
        self._lines.pop(consumer, None)
