"""Subscriptions over the websocket of a real devnode process, with CometBFT's query language and event shapes."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.client.chain_client import ChainClient
from gridmint.node.events import QueryError, parse_query
from tests.support.chain import MINT, key, signed
from tests.support.nodes import DevnodeProcess

pytestmark = pytest.mark.slow


def receive(socket, until: float) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return json.loads(socket.recv(timeout=max(0.1, until - time.monotonic())))  # type: ignore[no-any-return]


def test_new_block_and_tx_events(devnode_process: DevnodeProcess) -> None:
    url = devnode_process.url.replace("http", "ws") + "/websocket"
    alice = format_address(key("alice").address)
    with connect(url, open_timeout=10) as socket:
        socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                "params": {"query": "tm.event='NewBlock'"}}))
        assert json.loads(socket.recv(timeout=10)) == {"jsonrpc": "2.0", "id": 1, "result": {}}
        socket.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "subscribe",
                                "params": {"query": f"tm.event = 'Tx' AND transfer.sender = '{alice}'"}}))
        deadline = time.monotonic() + 20
        with ChainClient(devnode_process.url) as client:
            client.broadcast_sync(signed(key("bob"), 1, MsgSend(key("carol").address, MINT)))  # not alice: no Tx event
            tx_hash = client.broadcast_sync(signed(key("alice"), 1, MsgSend(key("bob").address, MINT)))
        tx_events = []
        blocks = []
        while time.monotonic() < deadline and not (tx_events and blocks):
            message = receive(socket, deadline)
            if message.get("id") == 2 and message.get("result"):
                tx_events.append(message["result"])
            elif message.get("id") == 1 and message.get("result"):
                blocks.append(message["result"])
        (event,) = tx_events
        assert event["data"]["type"] == "tendermint/event/Tx"
        assert event["events"]["tx.hash"] == [tx_hash]
        assert event["data"]["value"]["TxResult"]["result"]["code"] == 0
        assert blocks and blocks[0]["data"]["type"] == "tendermint/event/NewBlock"
        assert "result_finalize_block" in blocks[0]["data"]["value"]
        socket.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "unsubscribe_all"}))
        socket.send(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "subscribe", "params": {"query": "nonsense"}}))
        answers: list[dict] = []  # type: ignore[type-arg]
        while not any(a.get("id") == 4 for a in answers):  # events already in flight may come first
            answers.append(receive(socket, deadline))
        error = next(a for a in answers if a.get("id") == 4)
        assert error["error"]["code"] == -32602


@pytest.mark.parametrize("text", ["", "tm.event", "a = 'b' OR c = 'd'", "x" * 600, "a = b"])
def test_bad_queries_are_refused(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


def test_query_matching() -> None:
    query = parse_query("tm.event = 'Tx' AND transfer.amount = 5")
    assert query.matches({"tm.event": ["Tx"], "transfer.amount": ["5", "7"]})
    assert not query.matches({"tm.event": ["Tx"], "transfer.amount": ["7"]})
