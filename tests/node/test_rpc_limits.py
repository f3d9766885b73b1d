"""The devnode RPC's limits through its ASGI app (no sockets): a body or a batch over its limit, queries when the
query workers are all taken, and a flood of reads that must not hold back blocks. Each refusal carries its code,
changes nothing, and the next well-formed request is answered."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path

import pytest

from gridmint.chain import codec
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.node.devnode import DevNode, NodeSetupError
from gridmint.node.limits import RPCLimits
from gridmint.node.rpc import INTERNAL_ERROR, INVALID_REQUEST, SERVER_BUSY
from tests.node.test_rpc import b64tx, call, running, serving
from tests.support.chain import MINT, START_BALANCE, key, signed


def _send(nonce: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": nonce, "method": "broadcast_tx_sync",
            "params": {"tx": b64tx(signed(key("alice"), nonce, MsgSend(key("bob").address, MINT)))}}


def _balance_query(request_id: int, height: int = 0) -> dict[str, object]:
    bob = format_address(key("bob").address)
    params: dict[str, object] = {"path": f"/bank/balance/{bob}"}
    if height:
        params["height"] = str(height)
    return {"jsonrpc": "2.0", "id": request_id, "method": "abci_query", "params": params}


def _balance(answer: dict) -> int:  # type: ignore[type-arg]
    return int(codec.decode(base64.b64decode(answer["result"]["response"]["value"]))["balance"])


def test_a_body_over_max_body_bytes_is_refused_and_the_server_keeps_serving(node: DevNode) -> None:
    async def scenario() -> None:
        limits = RPCLimits(max_body_bytes=2_000)
        async with running(node, limits) as client:
            app_hash, height = node.last_app_hash, node.height
            oversized = [_send(n) for n in range(1, 10)]  # ~3 kB of valid transfers: not one may be admitted
            refused = await client.post("/", json=oversized)
            assert refused.status_code == 413 and refused.headers["connection"] == "close"
            error = refused.json()["error"]
            assert error["code"] == INVALID_REQUEST and "max_body_bytes (2000 bytes)" in error["data"]

            async def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted while read
                for _ in range(5):
                    yield b" " * 1_000

            streamed = await client.post("/", content=chunks())
            assert streamed.status_code == 413 and streamed.json()["error"]["code"] == INVALID_REQUEST
            assert len(node.mempool) == 0 and (node.last_app_hash, node.height) == (app_hash, height)
            assert (await call(client, "broadcast_tx_commit", tx=oversized[0]["params"]["tx"]))[  # type: ignore[index]
                "result"]["tx_result"]["code"] == 0

    asyncio.run(scenario())


def test_a_batch_over_max_request_batch_size_is_refused_whole(node: DevNode) -> None:
    async def scenario() -> None:
        async with running(node, RPCLimits(max_request_batch_size=3)) as client:
            refused = (await client.post("/", json=[_send(n) for n in range(1, 5)])).json()
            assert refused["error"]["code"] == INVALID_REQUEST
            assert "batch request exceeds maximum (3) allowed number of requests" in refused["error"]["data"]
            assert len(node.mempool) == 0  # none of the four was checked, let alone admitted
            answers = (await client.post("/", json=[_send(n) for n in range(1, 4)])).json()
            assert [a["result"]["code"] for a in answers] == [0, 0, 0]

    asyncio.run(scenario())


def test_queries_are_refused_as_busy_while_the_workers_are_taken(node: DevNode) -> None:
    async def scenario() -> None:
        async with serving(node, RPCLimits(query_workers=1, max_pending_queries=2)) as (client, server):
            await call(client, "broadcast_tx_commit", tx=_send(1)["params"]["tx"])  # type: ignore[index]
            pool = server.queries
            release = threading.Event()
            holders = [asyncio.create_task(pool.run(lambda snapshot: release.wait(30))) for _ in range(2)]
            await asyncio.sleep(0)
            assert pool.pending == 2
            busy = await client.post("/", json=_balance_query(5))
            assert busy.status_code == 200
            error = busy.json()["error"]
            assert error["code"] == SERVER_BUSY and "max_pending_queries 2" in error["data"]
            uri = (await client.get("/block?height=1")).json()["error"]  # the URI form goes the same way
            assert uri["code"] == SERVER_BUSY
            status = await call(client, "status")  # no read of the store: answered on the loop all the same
            assert int(status["result"]["sync_info"]["latest_block_height"]) >= 1
            release.set()
            await asyncio.gather(*holders)
            assert _balance((await client.post("/", json=_balance_query(6))).json()) == START_BALANCE + MINT

    asyncio.run(scenario())


def test_broadcast_tx_commit_gives_up_after_its_timeout(data_dir: Path) -> None:
    node = DevNode(data_dir, block_time=3_600)  # the first block is an hour away

    async def scenario() -> None:
        async with running(node, RPCLimits(timeout_broadcast_tx_commit_s=1)) as client:
            answer = await call(client, "broadcast_tx_commit", tx=_send(1)["params"]["tx"])  # type: ignore[index]
            assert answer["error"]["code"] == INTERNAL_ERROR
            assert "after 1s (timeout_broadcast_tx_commit)" in answer["error"]["data"]
            assert len(node.mempool) == 1  # admitted, and still on its way into a block
            assert (await call(client, "health"))["result"] == {}

    try:
        asyncio.run(scenario())
    finally:
        node.close()


def test_a_flood_of_reads_does_not_hold_back_blocks(data_dir: Path) -> None:
    """5,000 reads in one batch (a batch size the old devnode accepted, and ran on its block loop from start to
    end, so not one block was made until the last read was answered). Here every read runs on a query worker:
    blocks keep coming and a transfer is committed while the flood is still being answered."""
    node = DevNode(data_dir, block_time=0.02)

    async def scenario() -> None:
        async with running(node, RPCLimits(max_request_batch_size=5_000)) as client:
            committed = await call(client, "broadcast_tx_commit", tx=_send(1)["params"]["tx"])  # type: ignore[index]
            first = int(committed["result"]["height"])
            flood_body = [_balance_query(i, height=first if i % 3 == 1 else 0) if i % 3 != 2 else
                          {"jsonrpc": "2.0", "id": i, "method": "block", "params": {"height": str(first)}}
                          for i in range(5_000)]
            started_at = node.height
            flood = asyncio.create_task(client.post("/", json=flood_body, timeout=600))
            heights_at_end: list[int] = []
            flood.add_done_callback(lambda _: heights_at_end.append(node.height))
            while node.height < started_at + 5 and not flood.done():
                await asyncio.sleep(0.01)
            second = await call(client, "broadcast_tx_commit", tx=_send(2)["params"]["tx"])  # type: ignore[index]
            assert second["result"]["tx_result"]["code"] == 0
            assert not flood.done(), "the flood ended before blocks and a transfer got through; make it larger"
            answers = (await flood).json()
            assert heights_at_end[0] >= int(second["result"]["height"]) >= started_at + 5
            assert len(answers) == 5_000 and all("result" in a for a in answers)
            balances = {_balance(a) for a in answers if a["id"] % 3 != 2}
            assert balances <= {START_BALANCE + MINT, START_BALANCE + 2 * MINT}
            assert all(_balance(a) == START_BALANCE + MINT for a in answers if a["id"] % 3 == 1)  # at `first`
            assert all(a["result"]["block"]["header"]["height"] == str(first) for a in answers if a["id"] % 3 == 2)

    try:
        asyncio.run(scenario())
    finally:
        node.close()


@pytest.mark.parametrize("settings, message", [
    (["max_body_bytes=0"], "at least 1"),
    (["max_body_bytes"], "expected NAME=VALUE"),
    (["max_bodies=5"], "NAME one of"),
    (["max_request_batch_size=ten"], "whole number"),
])
def test_bad_limit_settings_are_refused(settings: list[str], message: str) -> None:
    with pytest.raises(NodeSetupError, match=message):
        RPCLimits().with_settings(settings)


def test_limit_settings_apply_by_cometbft_name() -> None:
    limits = RPCLimits().with_settings(["max_request_batch_size=500", "max_body_bytes = 4_000_000"])
    assert (limits.max_request_batch_size, limits.max_body_bytes) == (500, 4_000_000)
    assert limits.max_open_connections == 900 and RPCLimits().max_request_batch_size == 10

