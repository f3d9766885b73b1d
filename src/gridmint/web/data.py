"""What the explorer shows, read from a node's RPC (devnode or CometBFT) and turned into plain JSON.

Transactions are decoded here (signer, nonce, fee, each message with its fields; addresses shown as gm1…), next
to their result (code, log, events). The metagraph's history is the metagraph queried at past heights, which the
node answers from its versioned state.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np

from gridmint.chain.app import MESSAGE_TYPES
from gridmint.chain.crypto import address_of, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.tx import decode_tx
from gridmint.client.chain_client import ChainClient
from gridmint.client.metagraph import Metagraph

ONE = 1 << 30
MAX_BLOCKS = 50
MAX_HISTORY_POINTS = 40


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return format_address(value) if len(value) == 20 else value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def decode_transaction(raw: bytes) -> dict[str, Any]:
    """The transaction's envelope and messages, or what is wrong with it."""
    digest = hashlib.sha256(raw).hexdigest().upper()
    try:
        signed = decode_tx(raw, types=MESSAGE_TYPES)
    except ChainError as error:
        return {"hash": digest, "error": str(error)}
    body = signed.body
    return {"hash": digest, "signer": format_address(address_of(body.signer)), "nonce": body.nonce, "fee": body.fee,
            "memo": body.memo, "messages": [
                {"type": message.TYPE, "fields": {name: _plain(getattr(message, name)) for name, _ in message.FIELDS}}
                for message in body.messages]}


def _weight_row(pair: list[bytes]) -> dict[str, int]:
    """A validator's weights as the chain packs them (UIDs and weights as little-endian u16) -> {uid: weight}."""
    uids = np.frombuffer(pair[0], dtype="<u2").tolist()
    values = np.frombuffer(pair[1], dtype="<u2").tolist()
    return {str(uid): int(weight) for uid, weight in zip(uids, values, strict=True)}


def _events(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"type": e["type"], "attributes": {a["key"]: a["value"] for a in e.get("attributes", [])}}
            for e in raw or []]


class Explorer:
    def __init__(self, client: ChainClient) -> None:
        self.client = client

    def status(self) -> dict[str, Any]:
        status = self.client.status()
        return {"chain_id": status["node_info"]["network"],
                "height": int(status["sync_info"]["latest_block_height"]),
                "app_hash": status["sync_info"]["latest_app_hash"],
                "time": status["sync_info"]["latest_block_time"]}

    def blocks(self, limit: int = 20) -> list[dict[str, Any]]:
        top = self.client.height()
        out = []
        for height in range(top, max(0, top - min(limit, MAX_BLOCKS)), -1):
            header = self.client.block(height)["block"]
            out.append({"height": height, "time": header["header"]["time"], "txs": len(header["data"]["txs"] or []),
                        "proposer": header["header"]["proposer_address"], "app_hash": header["header"]["app_hash"]})
        return out

    def block(self, height: int) -> dict[str, Any]:
        found = self.client.block(height)["block"]
        results = self.client.call("block_results", height=str(height))
        txs = []
        for raw, result in zip(found["data"]["txs"] or [], results.get("txs_results") or [], strict=False):
            txs.append({**decode_transaction(base64.b64decode(raw)), "code": result["code"],
                        "codespace": result.get("codespace", ""), "log": result.get("log", ""),
                        "events": _events(result.get("events"))})
        header = found["header"]
        return {"height": height, "time": header["time"], "proposer": header["proposer_address"],
                "app_hash": header["app_hash"], "txs": txs,
                "events": _events(results.get("finalize_block_events"))}

    def tx(self, tx_hash: str) -> dict[str, Any]:
        found = self.client.tx(tx_hash)
        result = found["tx_result"]
        return {**decode_transaction(base64.b64decode(found["tx"])), "height": int(found["height"]),
                "code": result["code"], "codespace": result.get("codespace", ""), "log": result.get("log", ""),
                "events": _events(result.get("events"))}

    def account(self, address: str) -> dict[str, Any]:
        info: dict[str, Any] = {"address": address, "balance": self.client.balance(address),
                                "nonce": self.client.nonce(address)}
        hotkey = self.client.query(f"/subnets/hotkey/{address}")
        info["hotkey_of"] = hotkey["owner"]
        info["registered"] = hotkey["subnets"]
        info["credit_lines"] = self.client.query(f"/credit/lines/{address}")
        return info

    def subnets(self) -> list[dict[str, Any]]:
        return list(self.client.query("/subnets/list"))

    def metagraph(self, netuid: int) -> dict[str, Any]:
        graph = Metagraph.fetch(self.client, netuid)
        rows = []
        for uid in range(graph.n):
            endpoint = graph.endpoints[uid]
            rows.append({"uid": uid, "hotkey": graph.hotkeys[uid], "coldkey": graph.coldkeys[uid],
                         "stake": int(graph.stake[uid]), "permit": bool(graph.permit[uid]),
                         **{name: int(graph.vectors[name][uid]) / ONE
                            for name in ("consensus", "trust", "incentive", "dividends")},
                         "emission": int(graph.emission[uid]),
                         "endpoint": endpoint["url"] if endpoint else None,
                         "models": list(endpoint["models"]) if endpoint else []})
        weights = self.client.query(f"/subnets/{netuid}/metagraph", b"weights").get("weights") or {}
        return {"netuid": netuid, "block": graph.block, "n": graph.n, "uids": rows,
                "weights": {uid: _weight_row(pair) for uid, pair in weights.items()}}

    def commitments(self, netuid: int) -> dict[str, Any]:
        """What the subnet's hotkeys committed (a prediction validator's answer roots, say), newest first: the
        chain's first page of them."""
        found = self.client.query(f"/commitments/subnet/{netuid}")
        rows = [{"hotkey": c["hotkey"], "epoch": c["epoch"], "block": c["block"], "hash": c["hash"].hex(),
                 "data": c["data"].hex()} for c in found]
        return {"netuid": netuid, "commitments": sorted(rows, key=lambda r: (-r["block"], r["hotkey"]))}

    def history(self, netuid: int, points: int = 20) -> dict[str, Any]:
        """Incentive and emission per UID at up to ``points`` heights from the subnet's creation to now."""
        created = int(self.client.query(f"/subnets/{netuid}")["created_at"])
        top = self.client.height()
        count = max(1, min(points, MAX_HISTORY_POINTS))
        step = max(1, (top - created) // count)
        heights = sorted({max(created + 1, top - i * step) for i in range(count)})
        series = []
        for height in heights:
            try:
                graph = Metagraph.fetch(self.client, netuid, height=height)
            except ChainError:  # before the subnet existed, or state no longer kept
                continue
            series.append({"height": height,
                           "incentive": [int(v) / ONE for v in graph.vectors["incentive"]],
                           "emission": [int(v) for v in graph.vectors["emission"]]})
        return {"netuid": netuid, "points": series}

    def market(self) -> dict[str, Any]:
        orders = self.client.query("/market/orders")
        leases = []
        for order in orders:
            if order["state"] == "leased":
                leases.append(self.client.query(f"/market/lease/{order['lease']}"))
            order["bids"] = self.client.query(f"/market/order/{order['id']}")["bids"] if order["state"] == "open" \
                else []
        return {"providers": self.client.query("/market/providers"), "orders": orders, "leases": leases}

    def authorities(self) -> dict[str, Any]:
        return {"members": self.client.query("/authority/members"),
                "proposals": self.client.query("/authority/proposals")}

    def search(self, text: str) -> dict[str, Any]:
        """What ``text`` names: a block height, a transaction hash, or an account / hotkey address."""
        text = text.strip()
        if text.isascii() and text.isdigit() and len(text) <= 19:  # a height (int64), in plain digits
            return {"kind": "block", "target": int(text)}
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            self.client.tx(text)  # raises if unknown
            return {"kind": "tx", "target": text.upper()}
        if text.startswith("gm1"):
            self.account(text)  # raises if not an address
            return {"kind": "account", "target": text}
        return {"kind": "none", "target": text}

