"""The RPC boundary: huge batches and bodies, against CometBFT's RPC and the devnode's (which speaks the same
subset and must keep the same limits), and the query catalogue against the devnode."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridmint.chain import codec
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import BAD_SIGNATURE, MALFORMED
from gridmint.node.sigverify import default_workers
from tests.adversarial.hostile_network import HostileNetwork, is_coded_refusal
from tests.adversarial.test_hostile_queries import REPORTED, every_query_path
from tests.support.chain import forged, key, signed
from tests.support.nodes import DevnodeProcess, write_data_dir
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow]

BATCH = 5_000


def _batch(size: int) -> list[dict[str, object]]:
    return [{"jsonrpc": "2.0", "id": i, "method": "abci_query", "params": {"path": "/subnets/list"}}
            for i in range(size)]


def _is_refused(answer: httpx.Response) -> bool:
    """Refused as a whole: an HTTP error status, or one JSON-RPC error with a code instead of answers."""
    if answer.status_code >= 400:
        return True
    body = answer.json()
    return isinstance(body, dict) and bool(body.get("error", {}).get("code"))


@pytest.mark.xdist_group("cometbft")
def test_huge_batch_and_body_on_a_network_node(hostile_network: HostileNetwork) -> None:
    since = min(hostile_network.heights())
    assert _is_refused(httpx.post(hostile_network.url(), json=_batch(BATCH), timeout=60))
    assert _is_refused(httpx.post(hostile_network.url(), content=b"[" + b" " * 2_000_000 + b"]", timeout=60))
    hostile_network.assert_healthy(since)


@pytest.fixture
def devnode(tmp_path: Path) -> Iterator[DevnodeProcess]:
    folder = tmp_path / "node"
    write_data_dir(folder, accounts=("alice",))
    process = DevnodeProcess(folder, block_time=0.1)
    process.start()
    yield process
    process.stop()


def _height(url: str) -> int:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "status", "params": {}}, timeout=10)
    return int(answer.json()["result"]["sync_info"]["latest_block_height"])


def _assert_devnode_healthy(node: DevnodeProcess, since: int) -> None:
    """Still answering and still making blocks (a block every 0.1 s: 5 more within 30 s is ample)."""
    wait_for(lambda: _height(node.url) >= since + 5, "5 more blocks (the devnode stopped making them)", timeout_s=30)


def test_huge_batch_and_body_on_the_devnode(devnode: DevnodeProcess) -> None:
    since = _height(devnode.url)
    assert _is_refused(httpx.post(devnode.url, json=_batch(BATCH), timeout=60))
    assert _is_refused(httpx.post(devnode.url, content=b"[" + b" " * 2_000_000 + b"]", timeout=60))
    _assert_devnode_healthy(devnode, since)


def test_batch_items_of_every_shape_on_the_devnode(devnode: DevnodeProcess) -> None:
    """A batch is read item by item before any runs (the broadcasts among them go to the signature workers): an item
    of any shape gets its own coded error in its place, never a failed batch, and the node goes on."""
    since = _height(devnode.url)
    items: list[Any] = [{"jsonrpc": "2.0", "id": 1, "method": method} for method in ([], {}, 7, None)]
    items += [{"jsonrpc": "2.0", "id": 2, "method": "broadcast_tx_sync", "params": params}
              for params in ([], {"tx": 5}, {"tx": "%%%"}, {"tx": [base64.b64encode(b"x").decode()]})]
    items += [5, {"jsonrpc": "2.0", "id": 3, "method": "broadcast_tx_sync",
                     "params": {"tx": base64.b64encode(b"garbage").decode()}}]
    answer = httpx.post(devnode.url, json=items, timeout=30)
    assert answer.status_code == 200
    answers = answer.json()
    assert len(answers) == len(items)
    assert all(one["error"]["code"] for one in answers[:-1]), answers
    assert (answers[-1]["result"]["codespace"], answers[-1]["result"]["code"]) == (MALFORMED.module, MALFORMED.code)
    _assert_devnode_healthy(devnode, since)


def test_query_catalogue_on_the_devnode(devnode: DevnodeProcess) -> None:
    since = _height(devnode.url)
    with httpx.Client(timeout=30) as http:
        for template in REPORTED:
            answer = http.post(devnode.url, json={"jsonrpc": "2.0", "id": 1, "method": "abci_query",
                                                  "params": {"path": template.format(n=str(2**64))}}).json()
            assert is_coded_refusal(answer["result"]["response"]), (template, answer)
        for path in every_query_path():
            answer = http.post(devnode.url, json={"jsonrpc": "2.0", "id": 1, "method": "abci_query",
                                                  "params": {"path": path}}).json()
            if "error" in answer:
                assert answer["error"]["code"], (path, answer)
                continue
            response = answer["result"]["response"]
            assert int(response.get("code", 0)) == 0 or is_coded_refusal(response), (path, response)
    _assert_devnode_healthy(devnode, since)


def test_hostile_reads_of_the_block_log_on_the_devnode(devnode: DevnodeProcess) -> None:
    """``block``, ``block_results`` and ``tx`` read the block log (results spliced from stored text): heights and
    hashes out of range or malformed, in the JSON and the URI form, each get a coded error, and the node goes on
    making blocks and serving the real ones."""
    since = _height(devnode.url)
    heights = ["-1", "abc", str(2**63), str(2**64), "1e9", "0x10", " 5", str(since + 10**6)]
    hashes = ["", "abc", "A" * 64, base64.b64encode(b"\x00" * 32).decode(), base64.b64encode(b"\x01" * 5).decode(),
              "%%%", "A" * 100_000]
    with httpx.Client(timeout=30) as http:
        def call(method: str, **params: object) -> Any:
            return http.post(devnode.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()

        for method in ("block", "block_results"):
            for height in heights:
                answer = call(method, height=height)
                assert "error" in answer and answer["error"]["code"], (method, height, answer)
                uri = http.get(f"{devnode.url}/{method}", params={"height": height}).json()
                assert uri["error"]["code"], (method, height, uri)
        for digest in hashes:
            answer = call("tx", hash=digest)
            assert "error" in answer and answer["error"]["code"], (digest[:20], answer)
        results = call("block_results", height=str(since))["result"]
        assert results["height"] == str(since)
    _assert_devnode_healthy(devnode, since)


def _worker_signatures(url: str) -> float:
    """What the devnode's signature workers have checked so far (its Prometheus counter)."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("gridmint_worker_verified_signatures_total "):
            return float(line.split()[1])
    raise AssertionError("the devnode exposes no gridmint_worker_verified_signatures_total")


def test_forged_signatures_in_batches_of_broadcasts_on_the_devnode(tmp_path: Path) -> None:
    """A batch's signatures are checked by the devnode's worker processes (one per spare core): batches of forged
    signatures, and forged ones and garbage among honest transfers, are each refused with their code; the honest
    ones are admitted and committed in order, having been verified by a worker, and the node goes on making
    blocks."""
    folder = tmp_path / "node"
    write_data_dir(folder, accounts=("alice",))
    node = DevnodeProcess(folder, block_time=0.1, rpc_limits=("max_request_batch_size=200",))
    node.start()
    try:
        def post(raws: list[bytes]) -> list[tuple[str, int]]:
            requests = [{"jsonrpc": "2.0", "id": n, "method": "broadcast_tx_sync",
                         "params": {"tx": base64.b64encode(raw).decode()}} for n, raw in enumerate(raws)]
            answers = httpx.post(node.url, json=requests, timeout=30).json()
            assert [answer["id"] for answer in answers] == list(range(len(raws)))
            return [(answer["result"]["codespace"], answer["result"]["code"]) for answer in answers]

        bad_signature, malformed = (BAD_SIGNATURE.module, BAD_SIGNATURE.code), (MALFORMED.module, MALFORMED.code)
        since = _height(node.url)
        stolen = [forged(signed(key("alice"), nonce, MsgSend(key("mallory").address, 10**6)))
                  for nonce in range(1, 121)]
        if default_workers():  # forged batches, until the workers have started and checked one
            wait_for(lambda: post(stolen) == [bad_signature] * len(stolen) and _worker_signatures(node.url) > 0,
                     "the signature workers to check a batch", timeout_s=30)
        honest = [signed(key("alice"), nonce, MsgSend(key("bob").address, 1)) for nonce in range(1, 121)]
        counted = _worker_signatures(node.url)
        mixed = [*honest[:60], stolen[0], b"garbage", *honest[60:], stolen[1]]
        assert post(mixed) == [("", 0)] * 60 + [bad_signature, malformed] + [("", 0)] * 60 + [bad_signature]
        if default_workers():
            assert _worker_signatures(node.url) - counted == len(mixed)

        def alice_nonce() -> int:
            answer = httpx.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "abci_query", "params": {
                "path": f"/tx/nonce/{format_address(key('alice').address)}"}}, timeout=10).json()
            return int(codec.decode(base64.b64decode(answer["result"]["response"]["value"]))["nonce"])

        wait_for(lambda: alice_nonce() == len(honest), "the honest transfers to be committed", timeout_s=30)
        _assert_devnode_healthy(node, since)
    finally:
        node.stop()
