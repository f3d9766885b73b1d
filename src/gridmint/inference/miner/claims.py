"""Claiming on chain what gateways acknowledged and did not settle (``gridmint miner claim``).

For each receipt in the miner's book (the latest it signed per line) the chain is asked whether the line still
exists under that id (a reclaimed line has nothing left, and a reopened one has a new id, so receipts of the old
one no longer verify) and what it has paid this miner; a receipt newer than that (more grains and requests, no
fewer tokens: the chain's own rule) is claimable. Claims go per gateway, at most ``MAX_ENTRIES`` entries a
transaction. The chain takes all of a transaction or none, so when one with several entries is refused, its
entries are sent again one by one: one receipt that cannot be paid now does not hold back the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gridmint.chain.credit import MAX_ENTRIES, NO_LINE, MsgClaim
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.tx import Msg
from gridmint.inference.miner.book import ReceiptBook, SignedReceipt

CLAIMABLE, PAID, LINE_GONE = "claimable", "paid", "line_gone"
CLAIMED, REFUSED = "claimed", "refused"


class Chain(Protocol):
    """What claiming needs of a node (``ChainClient`` has it)."""

    def query(self, path: str) -> Any: ...

    def execute(self, key: PrivateKey, messages: list[Msg]) -> Any: ...


@dataclass
class Review:
    signed: SignedReceipt
    state: str  # CLAIMABLE, PAID or LINE_GONE; after ``claim``: CLAIMED or REFUSED for those that were claimable
    paid: tuple[int, int, int]  # what the chain had paid this miner on the line: tokens, grains, requests
    height: int = 0  # the block a claim landed in
    error: str = ""  # the chain's refusal

    def report(self) -> dict[str, Any]:
        receipt = self.signed.receipt
        return {"gateway": format_address(receipt.gateway), "line": receipt.line,
                "consumer": format_address(receipt.consumer), "tokens": receipt.tokens, "grains": receipt.grains,
                "requests": receipt.requests, "paid_grains": self.paid[1], "state": self.state,
                "height": self.height, "error": self.error}


def review(chain: Chain, book: ReceiptBook) -> list[Review]:
    """Every stored receipt, with what the chain has paid on its line and whether it is claimable."""
    miner = format_address(book.miner)
    reviews = []
    for signed in book.stored():
        receipt = signed.receipt
        consumer, gateway = format_address(receipt.consumer), format_address(receipt.gateway)
        try:
            line = chain.query(f"/credit/line/{consumer}/{gateway}")
        except ChainError as error:
            if error.kind != NO_LINE:
                raise
            reviews.append(Review(signed, LINE_GONE, (0, 0, 0)))
            continue
        if int(line["id"]) != receipt.line:
            reviews.append(Review(signed, LINE_GONE, (0, 0, 0)))
            continue
        paid = next(((int(p["tokens"]), int(p["grains"]), int(p["requests"]))
                     for p in chain.query(f"/credit/paid/{receipt.line}") if p["miner"] == miner), (0, 0, 0))
        newer = receipt.grains > paid[1] and receipt.tokens >= paid[0] and receipt.requests > paid[2]
        reviews.append(Review(signed, CLAIMABLE if newer else PAID, paid))
    return reviews


def claim_entry(signed: SignedReceipt, miner_key: bytes) -> list[object]:
    """The receipt as ``credit/claim`` takes it: [consumer, miner_key, tokens, grains, requests, miner_signature,
    gateway_signature]."""
    receipt = signed.receipt
    return [receipt.consumer, miner_key, receipt.tokens, receipt.grains, receipt.requests, signed.signature,
            signed.ack]


def claim(chain: Chain, key: PrivateKey, miner_key: bytes, reviews: list[Review]) -> list[Review]:
    """Send ``credit/claim`` for the claimable reviews, signed by ``key``; marks each CLAIMED or REFUSED."""
    by_gateway: dict[bytes, list[Review]] = {}
    for item in reviews:
        if item.state == CLAIMABLE:
            by_gateway.setdefault(item.signed.receipt.gateway, []).append(item)
    for gateway in sorted(by_gateway):
        pending = by_gateway[gateway]
        for start in range(0, len(pending), MAX_ENTRIES):
            group = pending[start:start + MAX_ENTRIES]
            if not _send(chain, key, miner_key, gateway, group) and len(group) > 1:
                for item in group:
                    _send(chain, key, miner_key, gateway, [item])
    return reviews


def _send(chain: Chain, key: PrivateKey, miner_key: bytes, gateway: bytes, group: list[Review]) -> bool:
    message = MsgClaim(gateway, group[0].signed.gateway_key, [claim_entry(item.signed, miner_key) for item in group])
    try:
        outcome = chain.execute(key, [message])
    except ChainError as error:
        for item in group:
            item.state, item.error = REFUSED, f"{error.module}/{error.kind.name}: {error.message}"
        return False
    for item in group:
        item.state, item.height, item.error = CLAIMED, int(outcome.height), ""
    return True
