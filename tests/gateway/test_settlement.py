"""Settlement backed by the miners' signed receipts, against a real devnode and real miner apps: the gateway serves
requests, asks each miner to sign the cumulative receipt of what it served on the consumer's line, and settles with
those signatures; the chain pays each miner's coldkey exactly the difference from what it paid before. A miner that
refuses to sign leaves its usage owed for the next period, and the settlement loop survives any exception."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridmint.chain.credit import MsgSettle, compute_fee
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.gateway.credit import read_line
from gridmint.gateway.ledger import Ledger, open_db
from gridmint.gateway.metrics import GatewayMetrics
from gridmint.gateway.settlement import settle_forever
from tests.support.chain import key
from tests.support.settlement_market import FEE_BPS, Market, open_market, serve_requests, settle_once

PRICE = {"m1": 2_000, "m2": 1_000}  # grains per 1k tokens


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    # m2 signs receipts for another chain only: it refuses every one this gateway asks for
    with open_market(tmp_path, PRICE, {"m2": "another-chain"}) as opened:
        yield opened


def test_settlement_pays_each_miner_exactly_what_it_signed_for_and_leaves_refused_usage_owed(
        market: Market, caplog: pytest.LogCaptureFixture) -> None:
    chain, consumer = market.chain, format_address(key("consumer").address)
    gateway = format_address(market.gateway_key.address)
    line = read_line(chain, consumer, gateway)
    assert line is not None and line.fee_bps == FEE_BPS
    m1_cost = serve_requests(market, "m1", 3)
    m2_cost = serve_requests(market, "m2", 2)
    m1_before = chain.balance(market.hotkeys["m1"])

    with caplog.at_level(logging.WARNING, logger="gridmint.gateway"):
        batch = settle_once(market)
    assert batch is not None and [e.miner for e in batch.entries] == [market.hotkeys["m1"]]
    [entry] = batch.entries
    assert (entry.grains, entry.requests, entry.delta) == (m1_cost, 3, m1_cost)
    fee = compute_fee(m1_cost, FEE_BPS)
    assert chain.balance(market.hotkeys["m1"]) == m1_before + m1_cost  # the miner's coldkey, to the grain
    after = read_line(chain, consumer, gateway)
    assert after is not None and after.balance == line.balance - m1_cost - fee
    assert chain.query(f"/credit/paid/{line.id}") == [
        {"miner": market.hotkeys["m1"], "tokens": entry.tokens, "grains": m1_cost, "requests": 3}]
    assert "another-chain" in caplog.text or "wrong_chain" in caplog.text  # m2 said why it signed nothing
    [left] = market.ledger.unbatched()  # m2's usage waits for a period in which it signs
    assert left.miner == market.hotkeys["m2"] and left.upto(10**9)[1:] == (m2_cost, 2)
    assert settle_once(market) is None  # m2 still refuses: nothing is sent

    # The next receipt is cumulative: the chain pays only what it adds.
    more = serve_requests(market, "m1", 2)
    m1_before = chain.balance(market.hotkeys["m1"])
    second = settle_once(market)
    assert second is not None and second.id == batch.id + 1
    [cumulative] = second.entries
    assert (cumulative.grains, cumulative.requests, cumulative.delta) == (m1_cost + more, 5, more)
    assert chain.balance(market.hotkeys["m1"]) == m1_before + more
    final = read_line(chain, consumer, gateway)
    assert final is not None and final.balance == line.balance - m1_cost - fee - more - compute_fee(more, FEE_BPS)

    # The first receipt sent again, as a new batch: the chain has paid past it.
    with pytest.raises(ChainError) as caught:
        chain.execute(market.gateway_key, [MsgSettle(second.id + 1, batch.settled)])
    assert caught.value.kind.name == "receipt_stale"
    usage = httpx.get(f"{market.url}/v1/usage", headers={"authorization": f"Bearer {market.api_key}"}).json()
    assert [r["grains"] for r in usage["receipts"]] == [m1_cost + more]
    assert [u["state"] for u in usage["usage"]] == ["settled"] * 3 + ["unsettled"] * 2 + ["settled"] * 2


class Exploding:
    """A chain client whose every call fails, first with an error nobody planned for."""

    def __init__(self) -> None:
        self.calls = 0

    def query(self, path: str) -> Any:
        self.calls += 1
        raise (RuntimeError("a bug") if self.calls == 1 else OSError("connection refused"))


def test_the_settlement_loop_survives_any_exception_and_says_what_failed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger(open_db(str(tmp_path / "gateway.db")))
    chain = Exploding()

    async def run() -> None:
        task = asyncio.create_task(settle_forever(chain, key("gateway"), ledger, lambda _: None,  # type: ignore[arg-type]
                                                  None, GatewayMetrics(), 0.01))  # type: ignore[arg-type]
        while chain.calls < 3:
            await asyncio.sleep(0.01)
        assert not task.done()  # still running after the bug and the outage
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="gridmint.gateway"):
        asyncio.run(run())
    assert "Settlement failed unexpectedly" in caplog.text and "a bug" in caplog.text
    assert "connection refused" in caplog.text
