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
from gridmint.gateway.ledger import Entry, Ledger, Usage, charge, open_db
from tests.support.chain import key

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
        return line_record(balance)

    def height(self) -> int:
        return 10


def line_record(balance: int, **terms: int) -> dict[str, Any]:
    """A line as ``/credit/line/<consumer>/<gateway>`` answers it."""
    return {"id": 1, "balance": balance, "spent": 0, "opened": 1, "expires": 1_000, "fee_bps": FEE_BPS,
            "max_price_per_1k": 10**6, "cap": 0, "cap_period": 0, "period_start": 1, "period_spent": 0,
            "closing_at": 0, **terms}


def book(tmp_path: Path, chain: ChainStandIn) -> CreditBook:
    return CreditBook(chain, GATEWAY, Ledger(open_db(str(tmp_path / "gateway.db"))),  # type: ignore[arg-type]
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
            credit.ledger.record(Usage("r", CONSUMER, 1, MINER, grains, grains, FEE_BPS))
        credit.ledger.flush()
        owed = credit.ledger.owed(CONSUMER)
        assert await credit.available(CONSUMER) == 1_000_000 - owed
        await asyncio.sleep(0.05)
        chain.gate = threading.Event()  # a refresh starts now and reads the line as it was before the settlement
        assert await credit.available(CONSUMER) == 1_000_000 - owed
        await asyncio.sleep(0.05)  # let the worker thread take its reading of the line
        [group] = credit.ledger.unbatched()
        batch = credit.ledger.open_batch(1, [Entry(CONSUMER, 1, MINER, b"k" * 32, 1_341, 1_341, 3, b"s" * 64, 1_341,
                                                   compute_fee(1_341, FEE_BPS), group.rows[-1][0])])
        assert batch.charges == {CONSUMER: 1_341 + compute_fee(1_341, FEE_BPS)}
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


@pytest.mark.parametrize(("terms", "spendable"), [
    ({}, 10_000),
    ({"cap": 3_000, "cap_period": 100, "period_spent": 1_000}, 2_000),  # what the cap leaves of the period
    ({"cap": 3_000, "cap_period": 5, "period_spent": 3_000}, 3_000),  # height 10 is in a new period: cap again
    ({"closing_at": 200}, 0),  # the consumer gave notice: nothing new is served
    ({"expires": 10}, 0),  # expired at the height read
])
def test_the_line_can_be_spent_only_as_its_terms_allow(tmp_path: Path, terms: dict[str, int],
                                                      spendable: int) -> None:
    chain = ChainStandIn(10_000)
    chain.query = lambda path: line_record(10_000, **terms)  # type: ignore[method-assign]
    credit = book(tmp_path, chain)
    assert asyncio.run(credit.available(CONSUMER)) == spendable


def test_reservations_never_let_requests_take_more_than_the_line_holds(tmp_path: Path) -> None:
    credit = book(tmp_path, ChainStandIn(1_000))

    async def scenario() -> None:
        line = await credit.line(CONSUMER)
        assert line is not None and line.fee_bps == FEE_BPS
        first = credit.reserve(CONSUMER, 600, FEE_BPS)
        assert first == charge(600, FEE_BPS) == 615
        assert credit.reserve(CONSUMER, 400, FEE_BPS) is None  # 410 more would pass 1,000
        second = credit.reserve(CONSUMER, 370, FEE_BPS)
        assert second == 380 and credit.room(CONSUMER) == 5
        credit.ledger.record(Usage("r1", CONSUMER, 1, MINER, 50, 100, FEE_BPS))  # the first answer cost 100
        credit.release(CONSUMER, first)
        assert credit.room(CONSUMER) == 1_000 - charge(100, FEE_BPS) - 380
        credit.release(CONSUMER, second)  # the second failed: all of it comes back
        assert credit.room(CONSUMER) == 1_000 - charge(100, FEE_BPS) and credit.reserved(CONSUMER) == 0

    asyncio.run(scenario())
