"""Block events from a NewBlock subscription message: successful transactions' events, then the block's own."""

from __future__ import annotations

from gridmint.client.blocks import parse_new_block, websocket_url


def _event(kind: str, **attributes: str) -> dict[str, object]:
    return {"type": kind, "attributes": [{"key": k, "value": v, "index": True} for k, v in attributes.items()]}


def test_a_new_block_message_gives_its_events_in_order() -> None:
    message = {"query": "tm.event = 'NewBlock'", "data": {"type": "tendermint/event/NewBlock", "value": {
        "block": {"header": {"height": "12"}},
        "result_finalize_block": {
            "tx_results": [
                {"code": 0, "events": [_event("order_created", order="3")]},
                {"code": 5, "events": [_event("bid", order="3")]},  # failed: its events never happened
                {"code": 0, "events": [_event("lease_started", lease="1", order="2")]},
            ],
            "events": [_event("escrow_exhausted", account="1")],
        }}}}
    block = parse_new_block(message)
    assert block is not None and block.height == 12
    assert [(e.type, e.attributes) for e in block.events] == [
        ("order_created", {"order": "3"}), ("lease_started", {"lease": "1", "order": "2"}),
        ("escrow_exhausted", {"account": "1"})]
    assert [e["account"] for e in block.of_type("escrow_exhausted")] == ["1"]


def test_other_messages_are_not_blocks() -> None:
    assert parse_new_block({}) is None
    assert parse_new_block({"data": {"type": "tendermint/event/Tx", "value": {}}}) is None


def test_the_websocket_sits_beside_the_rpc() -> None:
    assert websocket_url("http://127.0.0.1:26657/") == "ws://127.0.0.1:26657/websocket"
    assert websocket_url("https://node.example") == "wss://node.example/websocket"
