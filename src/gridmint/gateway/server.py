"""Builds a gateway from its wallet key, node and data folder, and runs it under uvicorn until SIGINT or SIGTERM.

Beside the app run two loops: the directory of miners is re-read from the chain every ``sync_s``, and usage is
settled every ``settle_s`` (and once more at shutdown). The gateway registers itself on chain (URL, fee, bond)
when the chain does not already list it that way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import uvicorn

from gridmint.chain.credit import MsgRegisterGateway
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.credit import CreditBook
from gridmint.gateway.keys import ApiKeys
from gridmint.gateway.ledger import Ledger, open_db
from gridmint.gateway.routing import Candidate, Directory, load_candidates
from gridmint.gateway.settlement import settle_forever
from gridmint.inference.asgi import CoalescingHttpToolsProtocol
from gridmint.inference.client import HttpError, MinerClient

log = logging.getLogger("gridmint.gateway")


def register_gateway(client: ChainClient, key: PrivateKey, url: str, fee_bps: int, bond: int) -> int:
    """Make the chain list this gateway at ``url`` with ``fee_bps``; returns the fee in force."""
    address = format_address(key.address)
    current = next((g for g in client.query("/credit/gateways") if g["gateway"] == address), None)
    bond = bond or (int(current["bond"]) if current else int(client.query("/credit/params")["min_bond"]))
    if current is not None and (current["url"], current["fee_bps"], current["bond"]) == (url, fee_bps, bond):
        log.info("The chain already lists this gateway at %s with a fee of %d bps.", url, fee_bps)
        return fee_bps
    outcome = client.execute(key, [MsgRegisterGateway(url, fee_bps, bond)])
    log.info("Registered gateway %s at %s (fee %d bps) in block %d.", address, url, fee_bps, outcome.height)
    return fee_bps


CAPABILITIES_EVERY_S = 60.0
UNANSWERED_RETRY_S = 5.0  # a miner still starting (loading its model) is asked again soon, not a minute later


async def refresh_capabilities(directory: Directory, miners: MinerClient, seen: dict[tuple[str, str], float]) -> None:
    """Ask each miner that is new, moved, or last asked ``CAPABILITIES_EVERY_S`` ago what it serves besides plain
    text (its public /v1/models); a miner that does not answer announces nothing until it does, and is asked again
    after ``UNANSWERED_RETRY_S``."""
    now = time.monotonic()
    due = [c for c in directory.candidates if now - seen.get((c.hotkey, c.url), -CAPABILITIES_EVERY_S) >=
           CAPABILITIES_EVERY_S]

    async def ask(candidate: Candidate) -> None:
        seen[(candidate.hotkey, candidate.url)] = now
        try:
            announced = await miners.capabilities(candidate.url, timeout_s=2.0)
        except HttpError:
            announced = {}
            seen[(candidate.hotkey, candidate.url)] = now - CAPABILITIES_EVERY_S + UNANSWERED_RETRY_S
        ours = next((announced[m] for m in candidate.models if m in announced), {})
        directory.capabilities[candidate.hotkey] = ours

    await asyncio.gather(*(ask(c) for c in due[:256]))


async def sync_directory_forever(directory: Directory, client: ChainClient, every_s: float,
                                 miners: MinerClient | None = None) -> None:
    seen: dict[tuple[str, str], float] = {}
    while True:
        try:
            candidates = await asyncio.to_thread(load_candidates, client)
            if len(candidates) != len(directory.candidates):
                log.info("%d miners announce endpoints across the subnets.", len(candidates))
            directory.replace(candidates)
            if miners is not None:
                await refresh_capabilities(directory, miners, seen)
        except (ChainError, OSError) as error:
            log.warning("Could not refresh the miners from the chain: %s", error)
        await asyncio.sleep(every_s)


def build_gateway(key: PrivateKey, client: ChainClient, data_dir: Path, fee_bps: int, rate: float, burst: int,
                  settle_s: float, sync_s: float, timeout_s: float = 60.0, allow: Iterable[str] = ()) -> GatewayApp:
    """``allow``: the exact IP:port of miners the gateway may reach although they are not public (loopback, ...)."""
    allow = tuple(allow)
    data_dir.mkdir(parents=True, exist_ok=True)
    address = format_address(key.address)
    db = open_db(str(data_dir / "gateway.db"))
    ledger = Ledger(db)  # each line carries its own fee (fixed when it opened); ``fee_bps`` is what new lines get
    credit = CreditBook(client, address, ledger)
    directory = Directory()
    directory.replace(load_candidates(client))
    app = GatewayApp(address, MinerClient(key, timeout_s=timeout_s, connections=256, allow=allow), directory,
                     ApiKeys(db, address), ledger, credit, RateLimiter(rate, burst), timeout_s=timeout_s)
    app.background = [lambda: sync_directory_forever(directory, client, sync_s, app.miners),
                      lambda: settle_forever(client, key, ledger, directory.url_of, credit, app.metrics, settle_s,
                                                     allow)]
    return app


def serve_gateway(app: GatewayApp, host: str, port: int) -> None:
    log.info("Gateway %s serves the OpenAI API at http://%s:%d/v1 for %d miners.", app.address, host, port,
             len(app.directory.candidates))
    uvicorn.run(app, host=host, port=port, log_level="warning", http=CoalescingHttpToolsProtocol, loop="auto",
                access_log=False, proxy_headers=False, server_header=False, date_header=False, lifespan="on",
                timeout_keep_alive=30, backlog=4096)
