"""What the miner and the gateway share to speak HTTP with little overhead: bare-ASGI body reading and answers,
and a uvicorn protocol that sends what one event-loop turn wrote with one write.

uvicorn writes a response's head and its body with two ``transport.write`` calls, and uvloop sends each at once:
two syscalls and two TCP segments per answer, which the caller then reads with two wake-ups. The coalescing
protocol gathers the writes made in one turn of the event loop and sends them at the end of that turn (a stream's
chunks still leave as they are produced: each is its own turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Job = Callable[[], Coroutine[Any, Any, None]]


async def run_lifespan(receive: Receive, send: Send, background: list[Job],
                       on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """ASGI lifespan: start the background jobs at start-up; at shutdown cancel them and wait until they end
    (a job may do its last work when cancelled), then ``on_shutdown``."""
    tasks: list[asyncio.Task[None]] = []
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            tasks = [asyncio.create_task(job()) for job in background]
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


class AnswerMeter:
    """Requests answered by endpoint and status, and their latency, with the label children cached (``labels()``
    costs more than the count itself)."""

    def __init__(self, prefix: str, registry: CollectorRegistry) -> None:
        self.requests = Counter(f"{prefix}_requests", "Requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=registry)
        self.latency = Histogram(f"{prefix}_latency_seconds", "Time from request to the last byte", ["endpoint"],
                                 registry=registry, buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60))
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(endpoint, str(status)),
                                              self.latency.labels(endpoint))
        children[0].inc()
        children[1].observe(seconds)


async def read_body(scope: dict[str, Any], receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it is (or claims to be) larger than ``limit`` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_raw(send: Send, status: int, body: bytes, content_type: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    # A content-length spares the server chunked framing and the caller a chunked parse.
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


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
