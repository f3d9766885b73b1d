"""The JSON-RPC against an in-process devnode (no sockets): CometBFT's shapes, batches, URI form, errors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gridmint.chain import codec
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address, verify
from gridmint.chain.tx import tx_hash
from gridmint.node.devnode import DevNode
from gridmint.node.limits import RPCLimits
from gridmint.node.rpc import RPCServer
from tests.support.chain import CHAIN_ID, MINT, START_BALANCE, forged, key, signed
from tests.support.waiting import wait_for


@contextlib.asynccontextmanager
async def serving(node: DevNode, limits: RPCLimits | None = None, signature_workers: int = 0
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, RPCServer]]:
    """The node's RPC in process; by default with no signature workers (check_tx verifies every signature)."""
    producer = asyncio.create_task(node.produce_forever())
    server = RPCServer(node, limits, signature_workers)
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://devnode") as client:
        try:
            yield client, server
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            server.close()


@contextlib.asynccontextmanager
async def running(node: DevNode, limits: RPCLimits | None = None) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(node, limits) as (client, _):
        yield client


async def call(client: httpx.AsyncClient, method: str, **params: Any) -> dict[str, Any]:
    answer = (await client.post("/", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params})).json()
    assert answer["id"] == 7
    return answer  # type: ignore[no-any-return]


def b64tx(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_broadcast_commit_then_tx_block_and_query(node: DevNode) -> None:
    async def scenario() -> None:
        async with running(node) as client:
            raw = signed(key("alice"), 1, MsgSend(key("bob").address, 2 * MINT))
            result = (await call(client, "broadcast_tx_commit", tx=b64tx(raw)))["result"]
            assert result["check_tx"]["code"] == 0 and result["tx_result"]["code"] == 0
            height = int(result["height"])
            assert height >= 1 and len(result["hash"]) == 64 and result["hash"].isupper()
            found = (await call(client, "tx", hash=base64.b64encode(bytes.fromhex(result["hash"])).decode()))["result"]
            assert found["height"] == str(height) and found["tx"] == b64tx(raw) and found["tx_result"]["code"] == 0
            assert any(e["type"] == "transfer" for e in found["tx_result"]["events"])
            block = (await call(client, "block", height=str(height)))["result"]
            assert block["block"]["header"]["chain_id"] == CHAIN_ID
            assert block["block"]["data"]["txs"] == [b64tx(raw)]
            status = (await call(client, "status"))["result"]
            assert status["node_info"]["network"] == CHAIN_ID
            assert int(status["sync_info"]["latest_block_height"]) >= height
            bob = format_address(key("bob").address)
            response = (await call(client, "abci_query", path=f"/bank/balance/{bob}"))["result"]["response"]
            assert codec.decode(base64.b64decode(response["value"]))["balance"] == START_BALANCE + 2 * MINT
            uri = (await client.get(f'/abci_query?path="/bank/balance/{bob}"')).json()["result"]["response"]
            assert uri["value"] == response["value"]
            metrics = (await client.get("/metrics")).text
            assert "gridmint_block_height" in metrics

    asyncio.run(scenario())


def test_block_results_and_tx_answer_from_the_results_kept_in_the_log(node: DevNode) -> None:
    """A block of two transfers, one of which fails in the block (its sender spent everything first): block_results
    gives CometBFT's fields in order, and ``tx`` gives each transaction the result block_results lists for it."""
    async def scenario() -> None:
        async with running(node) as client:
            everything = signed(key("alice"), 1, MsgSend(key("bob").address, START_BALANCE - MINT))
            too_much = signed(key("alice"), 2, MsgSend(key("bob").address, 2 * MINT))
            # A proposer may include what check_tx would refuse; the block runs both, and the second fails.
            for raw in (everything, too_much):
                node.mempool._txs[tx_hash(raw)] = raw
            block, _ = node.produce_block()
            height = block.header.height
            results = (await call(client, "block_results", height=str(height)))["result"]
            assert list(results) == ["height", "txs_results", "finalize_block_events", "validator_updates",
                                     "consensus_param_updates", "app_hash"]
            assert results["height"] == str(height)
            codes = [r["code"] for r in results["txs_results"]]
            assert codes[0] == 0 and codes[1] != 0 and "insufficient" in results["txs_results"][1]["log"]
            for index, raw in enumerate(block.txs):
                found = (await call(client, "tx", hash=base64.b64encode(tx_hash(raw)).decode()))["result"]
                assert (found["height"], found["index"], found["tx"]) == (str(height), index, b64tx(raw))
                assert found["tx_result"] == results["txs_results"][index]
            latest = (await call(client, "block_results"))["result"]
            assert int(latest["height"]) >= height

    asyncio.run(scenario())


def test_refusals_errors_and_batches(node: DevNode) -> None:
    async def scenario() -> None:
        async with running(node) as client:
            bad = (await call(client, "broadcast_tx_sync", tx=b64tx(b"garbage")))["result"]
            assert (bad["code"], bad["codespace"]) == (1, "tx") and bad["log"]
            commit = (await call(client, "broadcast_tx_commit", tx=b64tx(b"garbage")))["result"]
            assert commit["check_tx"]["code"] == 1 and commit["height"] == "0"
            assert (await call(client, "nope"))["error"]["code"] == -32601
            assert (await call(client, "broadcast_tx_sync", tx="%%%"))["error"]["code"] == -32602
            assert (await call(client, "broadcast_tx_sync"))["error"]["code"] == -32602
            assert (await call(client, "block", height="abc"))["error"]["code"] == -32602
            assert (await call(client, "block", height="999"))["error"]["code"] == -32602
            missing = base64.b64encode(b"\x00" * 32).decode()
            assert "not found" in (await call(client, "tx", hash=missing))["error"]["data"]
            assert (await client.post("/", content=b"{not json")).json()["error"]["code"] == -32700
            assert (await client.post("/", content=b"[]")).json()["error"]["code"] == -32600
            batch = [{"jsonrpc": "2.0", "id": n, "method": "broadcast_tx_sync",
                      "params": {"tx": b64tx(signed(key("alice"), n, MsgSend(key("bob").address, MINT)))}}
                     for n in range(1, 4)] + [{"jsonrpc": "2.0", "id": 9, "method": "health"}, 5,
                                              {"jsonrpc": "2.0", "id": 10, "method": ["broadcast_tx_sync"]},
                                              {"jsonrpc": "2.0", "id": 11, "method": {}}]
            answers = (await client.post("/", json=batch)).json()
            assert [a["result"]["code"] for a in answers[:3]] == [0, 0, 0]
            assert answers[3]["result"] == {} and answers[4]["error"]["code"] == -32600
            assert [a["error"]["code"] for a in answers[5:]] == [-32600, -32600]  # a method that is not a name
            query = (await call(client, "abci_query", path="/bank/nothing"))["result"]["response"]
            assert (query["code"], query["codespace"]) == (1, "query")
            assert (await client.get("/unknown_method")).status_code == 404

    asyncio.run(scenario())


def test_a_batch_of_broadcasts_has_its_signatures_checked_by_a_worker_process(
        node: DevNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's verdict spares check_tx the verification of each signature that held, and only those: a
    forged signature is verified again here and refused with its code, and the batch is answered in order."""
    from gridmint.chain import tx as tx_module
    from gridmint.chain.errors import BAD_SIGNATURE

    transfers = [signed(key("alice"), nonce, MsgSend(key("bob").address, 1)) for nonce in range(1, 101)]
    forgeries = [forged(signed(key("carol"), nonce, MsgSend(key("bob").address, 1))) for nonce in range(1, 11)]
    batch = [*transfers[:50], *forgeries, *transfers[50:]]
    verified_here: list[bytes] = []

    def counting(public_key: bytes, message: bytes, signature: bytes) -> bool:
        verified_here.append(public_key)
        return verify(public_key, message, signature)

    monkeypatch.setattr(tx_module, "verify", counting)  # this process only: the worker imports its own

    async def scenario() -> list[dict[str, Any]]:
        limits = RPCLimits(max_request_batch_size=200)
        async with serving(node, limits, signature_workers=1) as (client, server):
            server.verifier.start()
            await asyncio.to_thread(wait_for, server.verifier.ready, "the signature worker to start", 30)
            requests = [{"jsonrpc": "2.0", "id": n, "method": "broadcast_tx_sync", "params": {"tx": b64tx(raw)}}
                        for n, raw in enumerate(batch)]
            return (await client.post("/", json=requests)).json()  # type: ignore[no-any-return]

    answers = asyncio.run(scenario())
    assert [answer["id"] for answer in answers] == list(range(len(batch)))
    codes = [(answer["result"]["codespace"], answer["result"]["code"]) for answer in answers]
    assert codes == [("", 0)] * 50 + [(BAD_SIGNATURE.module, BAD_SIGNATURE.code)] * 10 + [("", 0)] * 50
    assert verified_here == [key("carol").public_key] * 10  # the forged ones, and none of the 100 that held
    assert "gridmint_worker_verified_signatures_total 110.0" in node.metrics.render().decode()
