"""Runs a MinerApp under uvicorn (httptools parser, uvloop where available) until SIGINT or SIGTERM.

uvicorn writes a response's head and its body with two ``transport.write`` calls, and uvloop sends each at once:
two syscalls and two TCP segments per answer, which the caller then reads with two wake-ups. The miner's
protocol class gathers the writes made in one turn of the event loop and sends them with one write at the end
of that turn (a stream's chunks still leave as they are produced: each is its own turn). bench/miner_rpc.py
measures what this buys at concurrency 32.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gridmint.inference.miner.app import MinerApp

log = logging.getLogger("gridmint.miner")


class CoalescingTransport:
    """A transport whose writes within one event-loop turn leave as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else (pause_reading, get_extra_info, ...) as is
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


def serve_miner(app: MinerApp, host: str, port: int) -> None:
    log.info("Miner %s serves %s (%s backend) on http://%s:%d; at most %d requests at once.", app.address,
             ", ".join(app.backend.models()), app.backend.name, host, port, app.max_concurrency)
    # No access log, proxy-header rewriting, Server or Date headers: each costs time on every request and the
    # miner's callers need none of them.
    uvicorn.run(app, host=host, port=port, log_level="warning", http=CoalescingHttpToolsProtocol, loop="auto",
                access_log=False, proxy_headers=False, server_header=False, date_header=False, lifespan="on",
                timeout_keep_alive=30, backlog=2048)
