from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain.app import BlockResult
from gridmint.chain.bank import MsgSend
from gridmint.chain.errors import ChainError
from gridmint.chain.subnets import MsgRegister
from gridmint.client.chain_client import ChainClient, TxOutcome, _result_data, raise_for_code
from gridmint.node.devnode import result_to_record
from gridmint.node.rpc import tx_result_json
from tests.chain.chain_world import build_world
from tests.support.chain import key


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
    """A registration's UID travels as the result's data (hex in the block log, base64 over the RPC, as CometBFT
    sends it) and comes out of ``TxOutcome.created``; a transfer created nothing."""
    net = build_world(tmp_path)
    net.send("owner", MsgRegister(1, key("x1/hot").address, 0), MsgSend(key("c1").address, 1))
    (result,) = net.commit()["owner"]
    over_rpc = tx_result_json(result_to_record(BlockResult([result], [], b"", []))["tx_results"][0])
    outcome = TxOutcome("", 1, 0, "", "", over_rpc["events"], _result_data(over_rpc))
    assert outcome.created() == {"netuid": 1, "uid": 4} and outcome.created(1) == {} and outcome.created(5) == {}
    assert outcome.attribute("neuron_registered", "uid") == "4"  # the event says the same
    with pytest.raises(ChainError) as caught:
        _result_data({"data": "not base64!"})
    assert caught.value.kind.name == "rpc_failed"
