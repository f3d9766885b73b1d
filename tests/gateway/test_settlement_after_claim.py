"""A miner's own claim must not stop the gateway's settlements: once a miner claims on chain a receipt the gateway
acknowledged (its right when the gateway is slow), the gateway's next receipt for that (line, miner), if it adds
nothing, is one the chain already paid. Sent in a batch, it would have the whole batch refused (``receipt_stale``),
period after period, with every other miner's entries in it: no miner of that gateway would be paid again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gridmint.chain.credit import MsgOpenCredit
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.subnets import MsgAnnounceEndpoint, MsgCreateSubnet, MsgRegister
from gridmint.chain.units import GRAINS_PER_MINT as MINT
from gridmint.client.chain_client import ChainClient
from gridmint.client.errors import TX_TIMEOUT
from gridmint.gateway import settlement
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.credit import CreditBook, read_line
from gridmint.gateway.keys import ApiKeys, gateway_at, request_api_key
from gridmint.gateway.ledger import Ledger, open_db
from gridmint.gateway.routing import Directory, load_candidates
from gridmint.gateway.server import register_gateway
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.http import HttpPool
from gridmint.inference.miner import claims
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.node.setup import init_data_dir
from tests.helpers import CHAIN_ID, DevnodeProcess, key, serve_asgi

FEE_BPS = 100
PRICE = 1_000
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "claim these tokens"}], "max_tokens": 8}
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
    miners: dict[str, MinerApp]


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    (tmp_path / "node").mkdir()
    init_data_dir(tmp_path / "node", CHAIN_ID, [(format_address(key(name).address), 10**6 * MINT) for name in NAMES])
    node = DevnodeProcess(tmp_path / "node", block_time=0.1)
    node.start()
    servers: list[tuple[uvicorn.Server, Any]] = []
    chain = ChainClient(node.url)
    try:
        gateway_key = key("gateway")
        gateway = format_address(gateway_key.address)
        chain.execute(key("owner"), [MsgCreateSubnet("text-generation", "claims")])
        miners = {}
        for name in ("m1", "m2"):
            miners[name] = MinerApp(key(name), EchoBackend(), CallerPolicy(gateways={gateway}), chain_id=CHAIN_ID,
                                    price_per_1k=PRICE)
            url, server, thread = serve_asgi(miners[name])
            servers.append((server, thread))
            chain.execute(key(name), [MsgRegister(1, key(name).address, 100 * MINT),
                                      MsgAnnounceEndpoint(1, url, ["echo"], PRICE, 1)])
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
        yield Market(chain, gateway_key, url, api_key, ledger, credit, directory, miners)
    finally:
        for running, _ in servers:
            running.should_exit = True
        for _, waiting in servers:
            waiting.join(timeout=10)
        chain.close()
        node.stop()


def _serve_requests(market: Market, miner: str, count: int) -> int:
    total = 0
    for _ in range(count):
        answer = httpx.post(f"{market.url}/v1/chat/completions", timeout=10,
                            json={**CHAT, "provider": {"only": [format_address(key(miner).address)]}},
                            headers={"authorization": f"Bearer {market.api_key}"})
        assert answer.status_code == 200, answer.text
        total += int(answer.headers["x-gridmint-cost"])
    return total


def _settle(market: Market) -> Any:
    async def once() -> Any:
        pool = HttpPool()
        try:
            return await settlement.settle(market.chain, market.gateway_key, market.ledger, market.directory.url_of,
                                           pool, market.credit)
        finally:
            pool.close()

    return asyncio.run(once())


def test_a_miners_claim_does_not_wedge_the_gateways_settlements(market: Market,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    chain, consumer = market.chain, format_address(key("consumer").address)
    gateway = format_address(market.gateway_key.address)
    line = read_line(chain, consumer, gateway)
    assert line is not None
    m1_cost = _serve_requests(market, "m1", 2)

    # The gateway asks m1 to sign (acknowledging the receipt), but its batch does not land in time.
    sent = settlement._send_batch

    def lost(*args: Any) -> int:
        raise TX_TIMEOUT("no answer from the node")

    monkeypatch.setattr(settlement, "_send_batch", lost)
    with pytest.raises(ChainError):
        _settle(market)
    monkeypatch.setattr(settlement, "_send_batch", sent)

    # m1's receipt, which the gateway acknowledged, is claimed (anyone may send it; its coldkey is paid exactly).
    m1 = market.miners["m1"]
    m1_before = chain.balance(format_address(key("m1").address))
    reviewed = claims.claim(chain, key("owner"), key("m1").public_key, claims.review(chain, m1.book))
    assert [r.state for r in reviewed] == [claims.CLAIMED]
    assert chain.balance(format_address(key("m1").address)) == m1_before + m1_cost

    # m2 serves meanwhile; the gateway must go on settling it, whatever m1 did.
    m2_cost = _serve_requests(market, "m2", 3)
    m2_before = chain.balance(format_address(key("m2").address))
    for _ in range(3):
        with contextlib.suppress(ChainError):  # the copy of the lost batch is refused: m1 was paid by its claim
            _settle(market)
    assert chain.balance(format_address(key("m2").address)) == m2_before + m2_cost
    assert chain.balance(format_address(key("m1").address)) == m1_before + m1_cost  # never paid twice
    assert market.ledger.unbatched() == []  # nothing left owed: m1's usage was paid by its claim
    assert market.ledger.owed(consumer) == 0
    states = [u["state"] for u in httpx.get(f"{market.url}/v1/usage",
                                            headers={"authorization": f"Bearer {market.api_key}"}).json()["usage"]]
    assert states == ["settled"] * 5
