from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import NONCE_REPLAYED, ChainError
from gridmint.chain.subnets import MsgRegister
from gridmint.client.chain_client import NONCE_RETRIES, ChainClient, TxOutcome, _result_data, raise_for_code
from gridmint.node.results_json import encode_tx_result
from tests.chain.chain_world import build_world
from tests.support.chain import key
from tests.support.nodes import DevnodeProcess, write_data_dir


def test_result_codes_become_the_registered_errors() -> None:
    raise_for_code(0, "", "")
    with pytest.raises(ChainError) as caught:
        raise_for_code(1, "bank", "insufficient funds: balance 1.0 MINT, needed 2.0 MINT")
    assert caught.value.kind.name == "insufficient_funds" and "needed 2.0 MINT" in caught.value.message
    with pytest.raises(ChainError) as caught:
        raise_for_code(99, "someday", "a module this client does not know yet")
    assert (caught.value.module, caught.value.code, caught.value.kind.name) == ("someday", 99, "unknown")


def test_an_unreachable_node_is_a_clear_error() -> None:
    with ChainClient("http://127.0.0.1:9", timeout=2) as client, pytest.raises(ChainError) as caught:
        client.status()
    assert caught.value.kind.name == "node_unreachable" and "GRIDMINT_NODE" in caught.value.message


def test_what_a_transaction_created_is_read_from_its_result_data(tmp_path: Path) -> None:
    """A registration's UID travels as the result's data (base64 in the block log and over the RPC, as CometBFT
    sends it) and comes out of ``TxOutcome.created``; a transfer created nothing."""
    net = build_world(tmp_path)
    net.send("owner", MsgRegister(1, key("x1/hot").address, 0), MsgSend(key("c1").address, 1))
    (result,) = net.commit()["owner"]
    over_rpc = json.loads(encode_tx_result(result))
    outcome = TxOutcome("", 1, 0, "", "", over_rpc["events"], _result_data(over_rpc))
    assert outcome.created() == {"netuid": 1, "uid": 4} and outcome.created(1) == {} and outcome.created(5) == {}
    assert outcome.attribute("neuron_registered", "uid") == "4"  # the event says the same
    with pytest.raises(ChainError) as caught:
        _result_data({"data": "not base64!"})
    assert caught.value.kind.name == "rpc_failed"


def test_a_transaction_whose_nonce_another_sender_of_the_key_took_is_signed_again_after_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two processes of one key (a validator on two subnets): the other's transaction waits in the mempool with the
    nonce this client reads as next, so check_tx refuses this one (nonce_replayed, nothing run); ``execute`` signs
    it again once the other is committed, and both transfers land, each once."""
    caplog.set_level(logging.INFO, logger="gridmint.client")
    write_data_dir(tmp_path)
    node = DevnodeProcess(tmp_path, block_time=1.0)  # a block a second: the other's transaction waits a while
    node.start()
    alice, bob = format_address(key("alice").address), format_address(key("bob").address)
    try:
        with ChainClient(node.url) as client:
            fee = client.required_fee([MsgSend(key("bob").address, 1)])
            sent = 0
            for _ in range(3):  # the block may land between the two; then nothing was taken, and it goes again
                start_nonce, start_balance = client.nonce(alice), client.balance(bob)
                client.broadcast_sync(client.sign(key("alice"), [MsgSend(key("bob").address, 1)], fee,
                                                  nonce=start_nonce + 1))
                outcome = client.execute(key("alice"), [MsgSend(key("bob").address, 2)])
                assert outcome.code == 0
                assert client.nonce(alice) == start_nonce + 2 and client.balance(bob) == start_balance + 3
                sent += 1
                if "was taken by another transaction of the same key" in caplog.text:
                    break
            assert "was taken by another transaction of the same key" in caplog.text, f"no retry in {sent} tries"
    finally:
        node.stop()


def test_signing_again_gives_up_after_its_bound_with_the_chains_refusal() -> None:
    """A nonce taken again and again (a runaway sender of the same key) ends in the chain's own error."""

    class Contested(ChainClient):
        def __init__(self) -> None:
            super().__init__("http://127.0.0.1:9")
            self.attempts = 0

        def nonce(self, address: str, height: int = 0) -> int:
            return 10 + self.attempts  # the other's transaction is always committed by the next look

        def chain_id(self) -> str:
            return "test"

        def broadcast_commit(self, raw: bytes) -> Any:
            self.attempts += 1
            raise NONCE_REPLAYED("nonce 11 was already used")

    with Contested() as client, pytest.raises(ChainError) as caught:
        client.send(key("alice"), [MsgSend(key("bob").address, 1)], fee=1)
    assert caught.value.kind == NONCE_REPLAYED and client.attempts == NONCE_RETRIES + 1
