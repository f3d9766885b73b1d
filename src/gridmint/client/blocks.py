"""New blocks as they are committed, with their events, over the node's websocket (devnode and CometBFT alike).

``follow_blocks`` subscribes to ``tm.event = 'NewBlock'`` and yields one ``BlockEvents`` per block: the events of
every transaction that succeeded, then the block's own (end-block) events, in the order the chain emitted them.
A dropped connection is reopened with a bounded backoff; the caller learns of the gap through the heights and can
reconcile from state (a subscription is a hint, the chain's state is the truth).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import websockets

log = logging.getLogger("gridmint.client")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ChainEvent:
    type: str
    attributes: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.attributes[key]


@dataclass(frozen=True)
class BlockEvents:
    height: int
    events: list[ChainEvent]

    def of_type(self, *types: str) -> list[ChainEvent]:
        return [event for event in self.events if event.type in types]


def _events(raw: list[dict[str, Any]]) -> list[ChainEvent]:
    # CometBFT 0.38 writes attribute keys and values as plain strings, as the devnode does.
    return [ChainEvent(str(e.get("type", "")), {str(a.get("key", "")): str(a.get("value", ""))
                                                for a in e.get("attributes", [])}) for e in raw]


def parse_new_block(result: dict[str, Any]) -> BlockEvents | None:
    """The events of a ``NewBlock`` subscription message, or None for any other message."""
    data = result.get("data") or {}
    if data.get("type") != "tendermint/event/NewBlock":
        return None
    value = data["value"]
    height = int(value["block"]["header"]["height"])
    finalized = value.get("result_finalize_block") or {}
    events: list[ChainEvent] = []
    for tx_result in finalized.get("tx_results") or []:
        if int(tx_result.get("code", 0)) == 0:
            events += _events(tx_result.get("events") or [])
    events += _events(finalized.get("events") or [])
    return BlockEvents(height, events)


def websocket_url(node_url: str) -> str:
    scheme, _, rest = node_url.rstrip("/").partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/websocket"


async def follow_blocks(node_url: str, max_backoff_s: float = 5.0) -> AsyncIterator[BlockEvents]:
    """Every new block from now on, forever; reconnects after a failure (logged), never raises for one."""
    backoff = 0.2
    while True:
        try:
            async with websockets.connect(websocket_url(node_url), max_size=MAX_MESSAGE_BYTES,
                                          open_timeout=10) as socket:
                await socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                              "params": {"query": "tm.event = 'NewBlock'"}}))
                backoff = 0.2
                async for message in socket:
                    answer = json.loads(message)
                    if "error" in answer:
                        raise ConnectionError(f"the node ended the subscription: {answer['error']}")
                    block = parse_new_block(answer.get("result") or {})
                    if block is not None:
                        yield block
        except (OSError, websockets.WebSocketException, ConnectionError, ValueError, KeyError) as error:
            log.warning("Lost the block subscription to %s (%s); reconnecting in %.1f s.", node_url, error, backoff)
        await asyncio.sleep(backoff)
        backoff = min(max_backoff_s, backoff * 2)
