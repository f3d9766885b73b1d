"""The consumer's credit as the gateway sees it: the first read waits for the chain, later ones never do, and a
settlement lowers the reading by exactly what the chain took, even past a refresh that read the line before it."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain.credit import compute_fee
from gridmint.chain.crypto import format_address
from gridmint.gateway.credit import CreditBook
from gridmint.gateway.ledger import Ledger, open_db
from tests.helpers import key

CONSUMER, MINER, GATEWAY = (format_address(key(name).address) for name in ("alice", "m1", "gateway"))
FEE_BPS = 250


class ChainStandIn:
    """The two reads CreditBook makes; ``gate`` holds every read back until it is set (reads run on a worker
    thread, as against a real node)."""

    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.reads = 0
        self.failure: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()

    def query(self, path: str) -> dict[str, Any]:
        assert path == f"/credit/line/{CONSUMER}/{GATEWAY}"
        balance = self.balance  # the line as the read finds it; the answer may come back much later
        assert self.gate.wait(10), "a read was held back and never let through"
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        return {"balance": balance, "expires": 1_000}

    def height(self) -> int:
        return 10


def book(tmp_path: Path, chain: ChainStandIn) -> CreditBook:
    return CreditBook(chain, GATEWAY, Ledger(open_db(str(tmp_path / "gateway.db")), FEE_BPS),  # type: ignore[arg-type]
                      ttl_s=0.01)


async def refreshed(credit: CreditBook) -> None:
    for _ in range(500):  # the refresh task runs on a worker thread: bounded wait for it to end
        if not credit._refreshing:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the refresh never ended")


def test_only_the_first_read_waits_and_a_stale_reading_is_refreshed_in_the_background(tmp_path: Path) -> None:
    chain = ChainStandIn(1_000_000)
    credit = book(tmp_path, chain)

    async def scenario() -> None:
        assert await credit.available(CONSUMER) == 1_000_000 and chain.reads == 1
        await asyncio.sleep(0.05)  # the reading is now older than ttl_s
        chain.balance, chain.gate = 400_000, threading.Event()  # the chain moved, and reads hang
        # Answered at once from the stale reading, though the chain read it started cannot finish yet.
        assert await asyncio.wait_for(credit.available(CONSUMER), 5) == 1_000_000
        assert await asyncio.wait_for(credit.available(CONSUMER), 5) == 1_000_000  # one refresh, not two
        chain.gate.set()
        await refreshed(credit)
        assert chain.reads == 2 and await credit.available(CONSUMER) == 400_000

    asyncio.run(scenario())


def test_a_settlement_lowers_the_reading_by_what_the_chain_took(tmp_path: Path) -> None:
    chain = ChainStandIn(1_000_000)
    credit = book(tmp_path, chain)

    async def scenario() -> None:
        assert await credit.available(CONSUMER) == 1_000_000
        for grains in (333, 1_001, 7):
            credit.ledger.record(CONSUMER, MINER, grains)
        credit.ledger.flush()
        owed = credit.ledger.owed(CONSUMER)
        assert await credit.available(CONSUMER) == 1_000_000 - owed
        await asyncio.sleep(0.05)
        chain.gate = threading.Event()  # a refresh starts now and reads the line as it was before the settlement
        assert await credit.available(CONSUMER) == 1_000_000 - owed
        await asyncio.sleep(0.05)  # let the worker thread take its reading of the line
        batch = credit.ledger.next_batch(after=0)
        assert batch is not None and batch.charges == {CONSUMER: 1_341 + compute_fee(1_341, FEE_BPS)}
        credit.ledger.confirm(batch.id)
        credit.settled(CONSUMER, batch.charges[CONSUMER])
        chain.balance = 1_000_000 - batch.charges[CONSUMER]  # what the chain holds after the batch
        assert credit.ledger.owed(CONSUMER) == 0
        assert await credit.available(CONSUMER) == chain.balance
        chain.gate.set()  # the early refresh ends with the old balance: dropped, not taken
        await refreshed(credit)
        assert await credit.available(CONSUMER) == chain.balance
        await refreshed(credit)  # the settlement asked for a fresh read, which agrees
        assert chain.reads >= 2 and await credit.available(CONSUMER) == chain.balance

    asyncio.run(scenario())


def test_a_failed_refresh_keeps_the_last_reading(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    chain = ChainStandIn(50_000)
    credit = book(tmp_path, chain)

    async def scenario() -> None:
        assert await credit.available(CONSUMER) == 50_000
        await asyncio.sleep(0.05)
        chain.failure = OSError("connection refused")
        assert await credit.available(CONSUMER) == 50_000
        await refreshed(credit)
        assert await credit.available(CONSUMER) == 50_000

    with caplog.at_level(logging.WARNING, logger="gridmint.gateway"):
        asyncio.run(scenario())
    assert "Could not re-read" in caplog.text and "connection refused" in caplog.text
