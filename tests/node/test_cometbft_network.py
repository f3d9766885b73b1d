"""The same app behind CometBFT v0.38: a 4-authority network on loopback (real cometbft processes from
`make cometbft`), transfers through CometBFT's RPC with the unchanged chain client, the same app hash on every node
at every height, blocks with 3 of 4 authorities and none with 2, catching up after a restart, and bad input
refused before it reaches a block."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridmint.chain.authority import MsgPropose, MsgVote
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.client.chain_client import ChainClient
from gridmint.node.network import (
    NodeSpec,
    init_network,
    node_status,
    start_network,
    start_node,
    stop_network,
    stop_node,
    validator_key,
)
from gridmint.web.data import Explorer
from tests.support.ports import free_port_range
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cometbft")]

SENDERS = [PrivateKey(bytes([i]) * 32) for i in range(1, 5)]
MINT = 10**9


@pytest.fixture
def network(tmp_path: Path) -> Iterator[list[NodeSpec]]:
    nodes = init_network(tmp_path / "net", 4, "gridmint-net", [(format_address(k.address), 1_000 * MINT)
                                                               for k in SENDERS], free_port_range(), "200ms")
    start_network(tmp_path / "net")
    try:
        wait_for(lambda: all(node_status(n).get("height", 0) >= 2 for n in nodes), "the first blocks")
        yield nodes
    finally:
        stop_network(tmp_path / "net")


def _url(node: NodeSpec) -> str:
    return f"http://127.0.0.1:{node.rpc_port}"


def _app_hashes(nodes: list[NodeSpec], upto: int) -> dict[int, set[str]]:
    """Height -> the app hashes the nodes' block headers at height+1 commit to for it."""
    seen: dict[int, set[str]] = {}
    for node in nodes:
        with ChainClient(_url(node)) as client:
            for height in range(2, upto + 1):
                header = client.block(height)["block"]["header"]
                seen.setdefault(height - 1, set()).add(header["app_hash"])
    return seen


def test_transfers_and_every_nodes_app_hash_agree(network: list[NodeSpec]) -> None:
    recipient = PrivateKey(b"\x77" * 32).address
    with ChainClient(_url(network[1])) as client:
        fee = client.required_fee([MsgSend(recipient, 1_000)])
        for round_ in range(3):
            raws = [client.sign(sender, [MsgSend(recipient, 1_000 + round_)], fee) for sender in SENDERS]
            hashes = [ChainClient(_url(network[i % 4])).broadcast_sync(raw) for i, raw in enumerate(raws)]
            outcomes = [client.wait_for_tx(h) for h in hashes]
            assert all(o.code == 0 for o in outcomes), outcomes
        assert client.balance(format_address(recipient)) == 4 * (1_000 + 1_001 + 1_002)
        # A malformed transaction is refused in check_tx with our error code and never reaches a block.
        with pytest.raises(ChainError) as caught:
            client.broadcast_sync(b"\x93\x01\x02")
        assert caught.value.kind.module == "tx"
        bad_signature = bytearray(raws[0])
        bad_signature[-5] ^= 0xFF
        with pytest.raises(ChainError) as caught:
            client.broadcast_sync(bytes(bad_signature))
        assert (caught.value.kind.module, caught.value.kind.name) == ("tx", "bad_signature")  # a byte of it
        top = client.height()
    wait_for(lambda: all(node_status(n).get("height", 0) >= top + 1 for n in network), "every node at the top")
    hashes_by_height = _app_hashes(network, top)
    assert all(len(found) == 1 for found in hashes_by_height.values()), hashes_by_height
    # The explorer reads a CometBFT node as it reads a devnode.
    with ChainClient(_url(network[2])) as client:
        explorer = Explorer(client)
        shown = explorer.tx(hashes[0])
        assert shown["code"] == 0 and shown["messages"][0]["type"] == "bank/send"
        assert any(t["hash"] == hashes[0] for t in explorer.block(shown["height"])["txs"])
        assert explorer.search(hashes[0])["kind"] == "tx" and explorer.status()["height"] >= top
        assert len(explorer.authorities()["members"]) == 4
    for node in network:
        with ChainClient(_url(node)) as client:
            assert not any(base64.b64decode(tx) == b"\x93\x01\x02"
                           for h in range(1, top + 1) for tx in client.block(h)["block"]["data"]["txs"] or [])


def test_three_of_four_keep_going_two_halt_and_restarted_nodes_catch_up(network: list[NodeSpec]) -> None:
    stop_node(network[3])
    start = node_status(network[0])["height"]
    wait_for(lambda: node_status(network[0])["height"] >= start + 3, "blocks with 3 of 4 authorities")
    stop_node(network[2])
    time.sleep(2)  # let what was in flight finish
    halted = node_status(network[0])["height"]
    time.sleep(3)
    assert node_status(network[0])["height"] <= halted + 1, "2 of 4 authorities cannot make blocks"
    # The two still running agree on every height both have (one may hold a block the other has not).
    both = min(node_status(node)["height"] for node in network[:2])
    assert all(len(found) == 1 for found in _app_hashes(network[:2], both).values())
    start_node(network[2])
    start_node(network[3])
    wait_for(lambda: min(node_status(n).get("height", 0) for n in network) >= halted + 3, "catching up", 120)
    top = min(node_status(n)["height"] for n in network)
    hashes_by_height = _app_hashes(network, top)
    assert all(len(found) == 1 for found in hashes_by_height.values()), hashes_by_height


def _signers(client: ChainClient, height: int) -> set[str]:
    """Validator addresses whose signatures on block ``height - 1`` are in block ``height``."""
    commit = client.block(height)["block"]["last_commit"]["signatures"]
    return {s["validator_address"] for s in commit if s.get("signature")}


def test_authorities_added_and_removed_by_vote_change_who_signs(tmp_path: Path) -> None:
    nodes = init_network(tmp_path / "net", 4, "gridmint-net", [], free_port_range(), "200ms", full_nodes=1)
    start_network(tmp_path / "net")
    try:
        wait_for(lambda: all(node_status(n).get("height", 0) >= 2 for n in nodes), "the first blocks")
        keys = [validator_key(n) for n in nodes]
        newcomer = keys[4]
        with ChainClient(_url(nodes[0])) as client:
            def run(signer: PrivateKey, message: object) -> dict[str, object]:
                outcome = client.send(signer, [message])  # type: ignore[list-item]
                assert outcome.code == 0, outcome.log
                return {"height": outcome.height, "id": outcome.attribute("authority_proposal", "id")}

            proposal = run(keys[0], MsgPropose("add", newcomer.public_key, 10, "node4"))
            run(keys[1], MsgVote(int(str(proposal["id"]))))
            passed = run(keys[2], MsgVote(int(str(proposal["id"]))))  # 3 of 4: more than two thirds
            newcomer_hex = newcomer.address.hex().upper()
            wait_for(lambda: newcomer_hex in _signers(client, client.height()), "the new authority to sign", 60)
            assert int(str(passed["height"])) + 2 <= client.height()

            removal = run(keys[0], MsgPropose("remove", keys[3].public_key, 0, "node3"))
            for voter in (keys[1], keys[2], newcomer):  # 4 of 5
                if voter is newcomer:
                    last = run(voter, MsgVote(int(str(removal["id"]))))
                else:
                    run(voter, MsgVote(int(str(removal["id"]))))
            members = {m["name"] for m in client.query("/authority/members")}
            assert members == {"node0", "node1", "node2", "node4"}
            wait_for(lambda: client.height() >= int(str(last["height"])) + 3, "the removal to take effect")
        # node3 no longer counts: with it and node2 stopped, 3 of the 4 authorities still make blocks.
        stop_node(nodes[3])
        stop_node(nodes[2])
        start = node_status(nodes[0])["height"]
        wait_for(lambda: node_status(nodes[0])["height"] >= start + 3, "blocks without node2 and node3", 60)
    finally:
        stop_network(tmp_path / "net")
