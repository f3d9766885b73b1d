"""Settlement backed by the miners' signed receipts, against a real devnode and real miner apps: the gateway serves
requests, asks each miner to sign the cumulative receipt of what it served on the consumer's line, and settles with
those signatures; the chain pays each miner's coldkey exactly the difference from what it paid before. A miner that
refuses to sign leaves its usage owed for the next period, and the settlement loop survives any exception."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gridmint.chain.credit import MsgOpenCredit, MsgSettle, compute_fee
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.subnets import MsgAnnounceEndpoint, MsgCreateSubnet, MsgRegister
from gridmint.chain.units import GRAINS_PER_MINT as MINT
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.credit import CreditBook, read_line
from gridmint.gateway.keys import ApiKeys, gateway_at, request_api_key
from gridmint.gateway.ledger import Ledger, open_db
from gridmint.gateway.metrics import GatewayMetrics
from gridmint.gateway.routing import Directory, load_candidates
from gridmint.gateway.server import register_gateway
from gridmint.gateway.settlement import settle, settle_forever
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.http import HttpPool
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.node.setup import init_data_dir
from tests.helpers import CHAIN_ID, DevnodeProcess, key, serve_asgi

FEE_BPS = 100
PRICE = {"m1": 2_000, "m2": 1_000}  # grains per 1k tokens
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "settle these tokens"}], "max_tokens": 8}
NAMES = ("owner", "gateway", "consumer", "m1", "m2")


@dataclass
class Market:
    chain: ChainClient
    gateway_key: PrivateKey
    url: str
    api_key: str
    ledger: Ledger
    credit: CreditBook
    directory: Directory
    hotkeys: dict[str, str]


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    (tmp_path / "node").mkdir()
    init_data_dir(tmp_path / "node", CHAIN_ID, [(format_address(key(name).address), 10**6 * MINT) for name in NAMES])
    node = DevnodeProcess(tmp_path / "node", block_time=0.1)
    node.start()
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    chain = ChainClient(node.url)
    try:
        gateway_key = key("gateway")
        gateway = format_address(gateway_key.address)
        chain.execute(key("owner"), [MsgCreateSubnet("text-generation", "settle")])
        for name in ("m1", "m2"):
            # m2 signs receipts for another chain only: it refuses every one this gateway asks for
            miner = MinerApp(key(name), EchoBackend(), CallerPolicy(gateways={gateway}),
                             chain_id=CHAIN_ID if name == "m1" else "another-chain", price_per_1k=PRICE[name])
            url, server, thread = serve_asgi(miner)
            servers.append((server, thread))
            chain.execute(key(name), [MsgRegister(1, key(name).address, 100 * MINT),
                                      MsgAnnounceEndpoint(1, url, ["echo"], PRICE[name], 1)])
        db = open_db(str(tmp_path / "gateway.db"))
        ledger = Ledger(db)
        credit = CreditBook(chain, gateway, ledger, ttl_s=0.0)
        directory = Directory(load_candidates(chain))
        allow = [c.url.removeprefix("http://") for c in directory.candidates]  # exactly its loopback miners
        app = GatewayApp(gateway, MinerClient(gateway_key, timeout_s=5, allow=allow), directory, ApiKeys(db, gateway),
                         ledger, credit, RateLimiter(1_000, 1_000), timeout_s=5)
        url, server, thread = serve_asgi(app)
        servers.append((server, thread))
        register_gateway(chain, gateway_key, url, FEE_BPS, 0)
        chain.execute(key("consumer"), [MsgOpenCredit(gateway_key.address, 10 * MINT, 10_000, 5_000, FEE_BPS, 0, 0)])
        api_key = request_api_key(url, key("consumer"), gateway_at(chain, url))
        yield Market(chain, gateway_key, url, api_key, ledger, credit, directory,
                     {name: format_address(key(name).address) for name in ("m1", "m2")})
    finally:
        for running, _ in servers:
            running.should_exit = True
        for _, waiting in servers:
            waiting.join(timeout=10)
        chain.close()
        node.stop()


def _serve_requests(market: Market, miner: str, count: int) -> int:
    """``count`` answers from ``miner`` through the gateway; the grains they cost, as their headers say."""
    total = 0
    for _ in range(count):
        answer = httpx.post(f"{market.url}/v1/chat/completions", timeout=10,
                            json={**CHAT, "provider": {"only": [market.hotkeys[miner]]}},
                            headers={"authorization": f"Bearer {market.api_key}"})
        assert answer.status_code == 200, answer.text
        total += int(answer.headers["x-gridmint-cost"])
    return total


def _settle(market: Market) -> Any:
    async def once() -> Any:
        pool = HttpPool()
        try:
            return await settle(market.chain, market.gateway_key, market.ledger, market.directory.url_of, pool,
                                market.credit)
        finally:
            pool.close()

    return asyncio.run(once())


def test_settlement_pays_each_miner_exactly_what_it_signed_for_and_leaves_refused_usage_owed(
        market: Market, caplog: pytest.LogCaptureFixture) -> None:
    chain, consumer = market.chain, format_address(key("consumer").address)
    gateway = format_address(market.gateway_key.address)
    line = read_line(chain, consumer, gateway)
    assert line is not None and line.fee_bps == FEE_BPS
    m1_cost = _serve_requests(market, "m1", 3)
    m2_cost = _serve_requests(market, "m2", 2)
    m1_before = chain.balance(market.hotkeys["m1"])

    with caplog.at_level(logging.WARNING, logger="gridmint.gateway"):
        batch = _settle(market)
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
    assert _settle(market) is None  # m2 still refuses: nothing is sent

    # The next receipt is cumulative: the chain pays only what it adds.
    more = _serve_requests(market, "m1", 2)
    m1_before = chain.balance(market.hotkeys["m1"])
    second = _settle(market)
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
