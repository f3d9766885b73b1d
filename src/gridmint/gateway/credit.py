"""How much a consumer may still spend through this gateway: its credit line on chain (on the terms it was opened
with) less what the ledger owes and has not settled yet, less what requests in flight have reserved. A line past its
expiry block, or closing (the consumer gave notice), is spent.

The line is read from the chain once before a consumer's first request; after that, a reading older than
``ttl_s`` is refreshed in the background while requests go on with the reading they have. Requests never queue
behind a chain read: a busy gateway's worker thread can take seconds to get one through, and every request of
that consumer used to wait for it. What keeps the stale reading safe is that only this gateway's settlements take
from the line, and each one lowers the reading by exactly what the chain took (``settled``); top-ups only raise it.

**Admission reserves the worst case.** Before a request goes to a miner, what it can cost at most (its prompt bound
plus ``max_tokens`` at the highest price it may be routed at, and the line's fee on that) is reserved against the
line, in the same turn of the event loop as the check, so concurrent requests can never together spend more than the
line holds; the reservation is released once the answer's real cost is in the ledger (or the request failed).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from gridmint.chain import credit as chain_credit
from gridmint.chain.credit import NO_LINE
from gridmint.chain.errors import ChainError
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.ledger import Ledger, charge

log = logging.getLogger("gridmint.gateway")


@dataclass(frozen=True)
class Line:
    """A consumer's credit line with this gateway, as the chain answered it, with the terms fixed at its opening."""

    id: int
    balance: int
    expires: int
    fee_bps: int
    max_price_per_1k: int
    closing_at: int
    record: dict[str, Any]  # the chain's answer, for ``credit.spendable`` (balance, cap and its period)

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Line:
        return cls(int(answer["id"]), int(answer["balance"]), int(answer["expires"]), int(answer["fee_bps"]),
                   int(answer["max_price_per_1k"]), int(answer.get("closing_at", 0)), answer)

    def spendable(self, height: int) -> int:
        """What the line may still pay for new requests at ``height``: nothing once expired or closing, else its
        balance within what its cap leaves of the period (the chain's own rule)."""
        if height >= self.expires or self.closing_at:
            return 0
        return chain_credit.spendable(self.record, height)


def read_line(client: ChainClient, consumer: str, gateway: str) -> Line | None:
    """``consumer``'s credit line with ``gateway``; None when it has none."""
    try:
        return Line.of(client.query(f"/credit/line/{consumer}/{gateway}"))
    except ChainError as error:
        if error.kind == NO_LINE:
            return None
        raise


@dataclass(frozen=True)
class Reading:
    line: Line | None
    height: int  # the chain's height when the line was read
    read_at: float  # time.monotonic() of the read (-inf: to be read again at once)
    spendable: int  # the line's spendable at that height, less what settlements took since


class CreditBook:
    def __init__(self, client: ChainClient, gateway: str, ledger: Ledger, ttl_s: float = 2.0) -> None:
        self.client = client
        self.gateway = gateway
        self.ledger = ledger
        self.ttl_s = ttl_s
        self._readings: dict[str, Reading] = {}
        self._reserved: dict[str, int] = {}  # consumer -> grains reserved by requests in flight
        self._first_reads: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        # Bumped by each settlement: a refresh that began before one may have read the line before the chain took
        # from it, so its reading is dropped rather than let it undo the settlement's adjustment.
        self._settlements: dict[str, int] = {}

    def _fetch(self, consumer: str, read_at: float) -> Reading:
        height = self.client.height()
        line = read_line(self.client, consumer, self.gateway)
        return Reading(line, height, read_at, 0 if line is None else line.spendable(height))

    async def line(self, consumer: str) -> Line | None:
        """The consumer's line as last read (read now before its first request; refreshed in the background)."""
        reading = self._readings.get(consumer)
        if reading is None:
            lock = self._first_reads.setdefault(consumer, asyncio.Lock())
            async with lock:  # one chain read per consumer at a time
                reading = self._readings.get(consumer)
                if reading is None:
                    settlements = self._settlements.get(consumer, 0)
                    reading = await asyncio.to_thread(self._fetch, consumer, time.monotonic())
                    if self._settlements.get(consumer, 0) != settlements:
                        # A settlement meanwhile: the read may predate it, so it is used once and read again at once.
                        reading = Reading(reading.line, reading.height, -math.inf, reading.spendable)
                    self._readings[consumer] = reading
        elif time.monotonic() - reading.read_at > self.ttl_s and consumer not in self._refreshing:
            self._refreshing[consumer] = asyncio.create_task(self._refresh(consumer))
        return reading.line

    def room(self, consumer: str) -> int:
        """What the consumer may still reserve: the line's spendable less what is owed and reserved."""
        reading = self._readings.get(consumer)
        if reading is None:
            return 0
        return reading.spendable - self.ledger.owed(consumer) - self._reserved.get(consumer, 0)

    async def available(self, consumer: str) -> int:
        await self.line(consumer)
        return self.room(consumer)

    def reserve(self, consumer: str, grains: int, fee_bps: int) -> int | None:
        """Reserve ``grains`` and the line's fee on them if the line can still pay that; returns what was reserved
        (to ``release``), None when it does not fit. Synchronous: the check and the reservation happen in the same
        turn of the event loop, so no concurrent request can take the same room."""
        needed = charge(grains, fee_bps)
        if needed > self.room(consumer):
            return None
        self._reserved[consumer] = self._reserved.get(consumer, 0) + needed
        return needed

    def release(self, consumer: str, reserved: int) -> None:
        left = self._reserved.get(consumer, 0) - reserved
        if left > 0:
            self._reserved[consumer] = left
        else:
            self._reserved.pop(consumer, None)

    def reserved(self, consumer: str) -> int:
        return self._reserved.get(consumer, 0)

    async def _refresh(self, consumer: str) -> None:
        settlements = self._settlements.get(consumer, 0)
        try:
            reading = await asyncio.to_thread(self._fetch, consumer, time.monotonic())
            if self._settlements.get(consumer, 0) == settlements:
                self._readings[consumer] = reading
        except (ChainError, OSError) as error:
            log.warning("Could not re-read %s's credit line (%s); its last reading stands until the next try.",
                        consumer, error)
        finally:
            del self._refreshing[consumer]

    def settled(self, consumer: str, charged: int) -> None:
        """A settlement took ``charged`` grains (usage and fees, as the chain counts them) from the consumer's line:
        lower the reading by as much, since the ledger no longer owes it, and have it read again."""
        self._settlements[consumer] = self._settlements.get(consumer, 0) + 1
        reading = self._readings.get(consumer)
        if reading is not None:
            self._readings[consumer] = Reading(reading.line, reading.height, -math.inf, reading.spendable - charged)
