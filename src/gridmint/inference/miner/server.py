"""Runs a MinerApp under uvicorn (httptools parser, uvloop where available) until SIGINT or SIGTERM, with the
coalescing protocol of ``inference.asgi`` (one write per event-loop turn)."""

from __future__ import annotations

import logging

import uvicorn

from gridmint.inference.asgi import CoalescingHttpToolsProtocol
from gridmint.inference.miner.app import MinerApp

log = logging.getLogger("gridmint.miner")


def serve_miner(app: MinerApp, host: str, port: int) -> None:
    log.info("Miner %s serves %s (%s backend) on http://%s:%d; at most %d requests at once.", app.address,
             ", ".join(app.backend.models()), app.backend.name, host, port, app.max_concurrency)
    # No access log, proxy-header rewriting, Server or Date headers: each costs time on every request and the
    # miner's callers need none of them.
    uvicorn.run(app, host=host, port=port, log_level="warning", http=CoalescingHttpToolsProtocol, loop="auto",
                access_log=False, proxy_headers=False, server_header=False, date_header=False, lifespan="on",
                timeout_keep_alive=30, backlog=2048)
