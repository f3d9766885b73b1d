"""A small market for the settlement tests: a real devnode, two echo miners (``m1``, ``m2``) and a gateway app
served in this process, the gateway registered on chain, the consumer's line open and its API key issued."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gridmint.chain.credit import MsgOpenCredit
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.subnets import MsgAnnounceEndpoint, MsgCreateSubnet, MsgRegister
from gridmint.chain.units import GRAINS_PER_MINT as MINT
from gridmint.client.chain_client import ChainClient
from gridmint.gateway import settlement
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.credit import CreditBook
from gridmint.gateway.keys import ApiKeys, gateway_at, request_api_key
from gridmint.gateway.ledger import Ledger, open_db
from gridmint.gateway.routing import Directory, load_candidates
from gridmint.gateway.server import register_gateway
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.http import HttpPool
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.node.setup import init_data_dir
from tests.support.asgi import serve_asgi
from tests.support.chain import CHAIN_ID, key
from tests.support.nodes import DevnodeProcess

FEE_BPS = 100
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
    miners: dict[str, MinerApp]
    hotkeys: dict[str, str]


@contextlib.contextmanager
def open_market(tmp_path: Path, prices: dict[str, int], chain_ids: dict[str, str] | None = None) -> Iterator[Market]:
    """``prices``: each miner's grains per 1k tokens; ``chain_ids``: a miner's own chain id where it is not the
    chain's (it then refuses every receipt the gateway asks it to sign)."""
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
        miners = {}
        for name in ("m1", "m2"):
            miners[name] = MinerApp(key(name), EchoBackend(), CallerPolicy(gateways={gateway}),
                                    chain_id=(chain_ids or {}).get(name, CHAIN_ID), price_per_1k=prices[name])
            url, server, thread = serve_asgi(miners[name])
            servers.append((server, thread))
            chain.execute(key(name), [MsgRegister(1, key(name).address, 100 * MINT),
                                      MsgAnnounceEndpoint(1, url, ["echo"], prices[name], 1)])
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
        yield Market(chain, gateway_key, url, api_key, ledger, credit, directory, miners,
                     {name: format_address(key(name).address) for name in miners})
    finally:
        for running, _ in servers:
            running.should_exit = True
        for _, waiting in servers:
            waiting.join(timeout=10)
        chain.close()
        node.stop()


def serve_requests(market: Market, miner: str, count: int) -> int:
    """``count`` answers from ``miner`` through the gateway; the grains they cost, as their headers say."""
    total = 0
    for _ in range(count):
        answer = httpx.post(f"{market.url}/v1/chat/completions", timeout=10,
                            json={**CHAT, "provider": {"only": [market.hotkeys[miner]]}},
                            headers={"authorization": f"Bearer {market.api_key}"})
        assert answer.status_code == 200, answer.text
        total += int(answer.headers["x-gridmint-cost"])
    return total


def settle_once(market: Market) -> Any:
    """One settlement round of the gateway (``settlement.settle``, looked up when called so tests can patch it)."""
    async def once() -> Any:
        pool = HttpPool()
        try:
            return await settlement.settle(market.chain, market.gateway_key, market.ledger, market.directory.url_of,
                                           pool, market.credit)
        finally:
            pool.close()

    return asyncio.run(once())
