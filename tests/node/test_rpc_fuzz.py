"""Fuzzing through the RPC: random and mutated transactions, and malformed JSON-RPC. Every one is refused with an
error code, the node keeps answering, and the app hash does not move."""

from __future__ import annotations

import asyncio
import base64
import os
import random

import pytest

from gridmint.chain.bank import MsgSend
from gridmint.node.devnode import DevNode
from gridmint.node.limits import RPCLimits
from tests.node.test_rpc import call, running
from tests.support.chain import MINT, key, signed
from tests.support.fuzzing import fuzz_cases

BATCH = 500


def garbage_requests(rng: random.Random, count: int) -> list[bytes]:
    shapes = [
        b'{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_sync","params":{"tx":12}}',
        b'{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_sync","params":["x"]}',
        b'{"jsonrpc":"2.0","id":1,"method":"abci_query","params":{"path":5,"data":"zz"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"-3"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tx","params":{"hash":"abc"}}',
        b'{"jsonrpc":"2.0","id":1,"method":[],"params":{}}',
        b'{"jsonrpc":"2.0","id":{"a":1},"method":"broadcast_tx_commit","params":{"tx":null}}',
        b"[" + b"1," * 10 + b"1]",
        b'"just a string"',
    ]
    out = []
    for _ in range(count):
        raw = bytearray(rng.choice(shapes))
        if rng.random() < 0.5:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        out.append(bytes(raw))
    return out


def fuzz_rpc(node: DevNode, count: int, seed: int) -> None:
    async def scenario() -> None:
        async with running(node, RPCLimits(max_request_batch_size=BATCH)) as client:
            first = await call(client, "broadcast_tx_commit",
                               tx=base64.b64encode(signed(key("alice"), 1, MsgSend(key("bob").address, MINT))).decode())
            assert first["result"]["tx_result"]["code"] == 0
            before = (await call(client, "status"))["result"]["sync_info"]["latest_app_hash"]
            cases = list(fuzz_cases(count, seed))
            for offset in range(0, len(cases), BATCH):
                batch = [{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync",
                          "params": {"tx": base64.b64encode(raw).decode()}}
                         for i, raw in enumerate(cases[offset:offset + BATCH])]
                answers = (await client.post("/", json=batch)).json()
                assert len(answers) == len(batch)
                for answer in answers:
                    assert "result" in answer, answer
                    assert answer["result"]["code"] != 0 and answer["result"]["codespace"]
            for raw in garbage_requests(random.Random(seed), 500):
                response = await client.post("/", content=raw)
                assert response.status_code == 200
                body = response.json()
                answers = body if isinstance(body, list) else [body]
                assert all("error" in a or a["result"].get("code", 1) != 0 for a in answers)
            status = (await call(client, "status"))["result"]
            assert status["sync_info"]["latest_app_hash"] == before
            assert len(node.mempool) == 0
            follow = await call(client, "broadcast_tx_commit",
                                tx=base64.b64encode(signed(key("alice"), 2, MsgSend(key("bob").address, 1))).decode())
            assert follow["result"]["tx_result"]["code"] == 0  # still serving

    asyncio.run(scenario())


def test_rpc_refuses_every_fuzzed_transaction(node: DevNode) -> None:
    fuzz_rpc(node, 10_000, seed=5)


@pytest.mark.long
@pytest.mark.skipif(not os.environ.get("GRIDMINT_LONG"), reason="long run: set GRIDMINT_LONG=1")
def test_rpc_fuzz_long_run(node: DevNode) -> None:
    fuzz_rpc(node, 200_000, seed=int(os.environ.get("GRIDMINT_FUZZ_SEED", "6")))
