"""Runs a devnode: block production and the RPC server on one event loop, until SIGINT or SIGTERM.

The two limits that refuse a request before it reaches the RPC code live here, in the HTTP protocol: a
connection past ``max_open_connections`` is answered 503 and closed, and a request whose line and headers
pass ``max_header_bytes`` is answered 431 and closed (as CometBFT answers both). A connection that sends nothing
is closed after uvicorn's keep-alive timeout, so idle sockets cannot hold every place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gridmint.chain.crypto import format_address
from gridmint.chain.store import DEFAULT_KEEP_RECENT
from gridmint.node.devnode import DevNode, NodeSetupError
from gridmint.node.limits import RPCLimits
from gridmint.node.rpc import RPCServer
from gridmint.servers import GracefulServer

log = logging.getLogger("gridmint.devnode")


def listen(host: str, port: int) -> socket.socket:
    """Bind the RPC socket first, so that a taken port is one clear error before any block is made."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise NodeSetupError(f"cannot listen on {host}:{port} ({exc.strerror}); is another node running there? "
                             "Choose another address with --rpc-laddr") from None
    return listener


def _plain_response(status: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with CometBFT's connection and header limits (``limits`` is set by
    ``limited_protocol``)."""

    limits = RPCLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._served = len(self.connections) < self.limits.max_open_connections
        self._ignoring = not self._served
        self._reading_head = True
        self._head_bytes = 0
        if not self._served:  # never parsed, never counted: the client learns why and may come back
            transport.write(_plain_response(b"503 Service Unavailable", (
                f"max_open_connections ({self.limits.max_open_connections}) reached; retry later").encode()))
            transport.close()
            return
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a first answer; a socket that never speaks is closed too.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._served:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._ignoring:
            return
        if self._reading_head:
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > self.limits.max_header_bytes:
                self._ignoring = True
                self._unset_keepalive_if_required()
                self.transport.write(_plain_response(b"431 Request Header Fields Too Large", (
                    f"request line and headers exceed max_header_bytes ({self.limits.max_header_bytes})").encode()))
                self.transport.close()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head, self._head_bytes = True, 0


def limited_protocol(limits: RPCLimits) -> type[LimitedHttpProtocol]:
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})


def server_config(rpc: RPCServer) -> uvicorn.Config:
    return uvicorn.Config(
        rpc.app, log_level="warning", http=limited_protocol(rpc.limits), ws="websockets-sansio",
        ws_max_size=rpc.limits.max_websocket_message_bytes, lifespan="off", timeout_graceful_shutdown=2)


async def serve(node: DevNode, host: str, port: int, limits: RPCLimits | None = None) -> None:
    listener = listen(host, port)
    rpc = RPCServer(node, limits)
    rpc.verifier.start()
    try:
        await _serve(node, rpc, listener, host, port)
    finally:
        rpc.close()


async def _serve(node: DevNode, rpc: RPCServer, listener: socket.socket, host: str, port: int) -> None:
    server = GracefulServer(server_config(rpc))
    producer = asyncio.create_task(node.produce_forever())
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    log.info("Devnode of chain %s is at height %d; authority %s; RPC on http://%s:%d; a block every %s.",
             node.genesis.chain_id, node.height, format_address(node.key.address), host, port,
             f"{node.block_time:g} s" if node.block_time else "batch of waiting transactions")
    done, _ = await asyncio.wait({producer, serving}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    producer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await producer
    await serving
    for task in done:
        if task is producer and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def run_devnode(data_dir: Path, block_time: float, host: str, port: int, keep_recent: int = DEFAULT_KEEP_RECENT,
                limits: RPCLimits | None = None) -> None:
    node = DevNode(data_dir, block_time=block_time, keep_recent=keep_recent)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(node, host, port, limits))
    finally:
        node.close()
        log.info("Devnode stopped at height %d.", node.height)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # uvloop is a speed-up, not a requirement
        return None
