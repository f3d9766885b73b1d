"""Runs a provider: its HTTP endpoint under uvicorn, the chain's blocks as they come, and periodic health checks.

The daemon's work is synchronous (chain calls, starting processes); it runs on worker threads so that the proxy
keeps answering while a block is handled. On SIGINT or SIGTERM uvicorn stops serving, and every workload is
stopped before the process exits (a restarted provider picks its open leases up again from the chain; tenants
send their manifests again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from gridmint.client.blocks import follow_blocks
from gridmint.market.provider.api import ProviderAPI
from gridmint.market.provider.daemon import Provider
from gridmint.servers import GracefulServer

log = logging.getLogger("gridmint.provider")


async def follow_chain(provider: Provider, node_url: str) -> None:
    """Handle every block; reconcile from state first and after any gap in the subscription."""
    last: int | None = None
    async for block in follow_blocks(node_url):
        if last is None or block.height > last + 1:
            await asyncio.to_thread(provider.reconcile)
        last = block.height
        try:
            await asyncio.to_thread(provider.handle_block, block)
        except Exception:
            log.exception("Handling block %d failed; the next block is handled as usual.", block.height)


async def check_health_forever(provider: Provider, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(provider.check_health)
        except Exception:
            log.exception("The health check failed; trying again in %.0f s.", every_s)


async def run_provider(provider: Provider, host: str, port: int, node_url: str, health_every_s: float = 2.0) -> None:
    api = ProviderAPI(provider)
    server = GracefulServer(uvicorn.Config(api.app, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="on", server_header=False))
    tasks = [asyncio.create_task(follow_chain(provider, node_url)),
             asyncio.create_task(check_health_forever(provider, health_every_s))]
    log.info("Provider %s serves tenants on http://%s:%d with the %s runtime.", provider.address, host, port,
             provider.runtime.name)
    try:
        await server.serve()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(provider.shutdown)
        log.info("Provider stopped; %d leases' workloads were stopped.", len(provider.leases))
