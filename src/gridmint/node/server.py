"""Runs a devnode: block production and the RPC server on one event loop, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from gridmint.chain.crypto import format_address
from gridmint.chain.store import DEFAULT_KEEP_RECENT
from gridmint.node.devnode import DevNode, NodeSetupError
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


async def serve(node: DevNode, host: str, port: int) -> None:
    listener = listen(host, port)
    server = GracefulServer(uvicorn.Config(
        RPCServer(node).app, log_level="warning", ws="websockets-sansio", lifespan="off",
        timeout_graceful_shutdown=2))
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


def run_devnode(data_dir: Path, block_time: float, host: str, port: int, keep_recent: int = DEFAULT_KEEP_RECENT
                ) -> None:
    node = DevNode(data_dir, block_time=block_time, keep_recent=keep_recent)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(node, host, port))
    finally:
        node.close()
        log.info("Devnode stopped at height %d.", node.height)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # uvloop is a speed-up, not a requirement
        return None
