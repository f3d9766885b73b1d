"""The limits that need real sockets, against the devnode's own uvicorn configuration on a loopback port:
subscriptions per client and subscribing clients, a websocket message over its limit, headers over their limit,
and connections past ``max_open_connections``. Every refusal carries its code or HTTP status, and meanwhile a
well-behaved websocket keeps receiving new blocks and a well-behaved HTTP client keeps getting answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gridmint.node.devnode import DevNode
from gridmint.node.limits import RPCLimits
from gridmint.node.rpc import INVALID_PARAMS, INVALID_REQUEST, LIMIT_EXCEEDED, RPCServer
from gridmint.node.server import listen, server_config
from gridmint.ports import free_port

LIMITS = RPCLimits(max_subscriptions_per_client=2, max_subscription_clients=2, max_open_connections=8,
                   max_header_bytes=4_096, max_body_bytes=10_000, max_websocket_message_bytes=10_000)


@contextlib.asynccontextmanager
async def devnode_server(node: DevNode, limits: RPCLimits) -> AsyncIterator[str]:
    """The devnode's RPC as ``node start`` serves it (``server_config``), and its block loop, on this loop."""
    port = free_port()
    rpc = RPCServer(node, limits)
    server = uvicorn.Server(server_config(rpc))
    serving = asyncio.create_task(server.serve(sockets=[listen("127.0.0.1", port)]))
    producer = asyncio.create_task(node.produce_forever())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        rpc.close()


async def ask(socket: ClientConnection, request_id: int, method: str, **params: Any) -> dict[str, Any]:
    """Send one request and return its answer, skipping the events of subscriptions that arrive meanwhile."""
    await socket.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 20))
        if answer.get("id") == request_id and "query" not in (answer.get("result") or {}):
            return answer


async def next_block_height(socket: ClientConnection, subscription_id: int) -> int:
    while True:
        event = json.loads(await asyncio.wait_for(socket.recv(), 20))
        if event.get("id") == subscription_id and (event.get("result") or {}).get("query"):
            return int(event["result"]["data"]["value"]["block"]["header"]["height"])


async def raw_request(address: str, head: bytes) -> bytes:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)  # every refusal closes the connection
    writer.close()
    return answer


def test_subscriptions_messages_headers_and_connections_past_their_limits(data_dir: Path) -> None:
    node = DevNode(data_dir, block_time=0.05)

    async def scenario() -> None:
        async with devnode_server(node, LIMITS) as address, \
                connect(f"ws://{address}/websocket", max_size=None) as watcher, \
                httpx.AsyncClient(base_url=f"http://{address}", timeout=20) as client:
            # A well-behaved client: one subscription to new blocks, which must keep arriving throughout.
            assert (await ask(watcher, 1, "subscribe", query="tm.event = 'NewBlock'"))["result"] == {}
            first = await next_block_height(watcher, 1)

            assert (await ask(watcher, 2, "subscribe", query="tm.event = 'Tx'"))["result"] == {}
            third = (await ask(watcher, 3, "subscribe", query="tm.event = 'Tx' AND tx.height = 5"))["error"]
            assert third["code"] == LIMIT_EXCEEDED and third["data"] == "max_subscriptions_per_client 2 reached"
            assert (await ask(watcher, 4, "health"))["result"] == {}  # the same socket answers on
            await watcher.send(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "unsubscribe", "params": ["x"]}))
            while (answer := json.loads(await asyncio.wait_for(watcher.recv(), 20))).get("id") != 5:
                pass
            assert answer["error"]["code"] == INVALID_PARAMS  # and the socket stays open

            async with connect(f"ws://{address}/websocket") as second, \
                    connect(f"ws://{address}/websocket") as third_client:
                assert (await ask(second, 1, "subscribe", query="tm.event = 'NewBlock'"))["result"] == {}
                refused = (await ask(third_client, 1, "subscribe", query="tm.event = 'NewBlock'"))["error"]
                assert refused["code"] == LIMIT_EXCEEDED and "max_subscription_clients 2 reached" in refused["data"]
                assert (await ask(third_client, 2, "status"))["result"]["sync_info"]["latest_block_height"]
                assert (await ask(second, 2, "unsubscribe_all"))["result"] == {}  # a place among clients frees
                assert (await ask(third_client, 3, "subscribe", query="tm.event = 'NewBlock'"))["result"] == {}

            async with connect(f"ws://{address}/websocket", max_size=None) as flooder:
                await flooder.send("x" * 10_001)
                try:
                    while True:
                        await asyncio.wait_for(flooder.recv(), 20)
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 1009  # message too big

            big_head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 5_000 + b"\r\n\r\n"
            assert (await raw_request(address, big_head)).startswith(b"HTTP/1.1 431 ")
            big_body = await client.post("/", content=b" " * 10_001)
            assert big_body.status_code == 413 and big_body.json()["error"]["code"] == INVALID_REQUEST

            # Fill max_open_connections with keep-alive connections, each answered once, until one is refused.
            # The watcher holds a place, and the client may hold one (the 413 closed its last connection).
            host, port = address.split(":")
            held, refused_at = [], 0
            for opened in range(1, LIMITS.max_open_connections + 1):
                reader, writer = await asyncio.open_connection(host, int(port))
                held.append(writer)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
                if head.startswith(b"HTTP/1.1 503 "):
                    assert b"max_open_connections (8) reached" in await asyncio.wait_for(reader.read(), 20)
                    refused_at = opened
                    break
                assert head.startswith(b"HTTP/1.1 200 ")
                await reader.readexactly(int(head.split(b"content-length: ")[1].split(b"\r\n")[0]))
            assert LIMITS.max_open_connections - 2 <= refused_at <= LIMITS.max_open_connections
            for writer in held:
                writer.close()
            await asyncio.sleep(0.2)  # let the server see them go
            assert (await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "health"})).json()["result"] == {}

            # Blocks kept coming to the well-behaved subscriber through all of it.
            assert await next_block_height(watcher, 1) > first

    try:
        asyncio.run(scenario())
    finally:
        node.close()
