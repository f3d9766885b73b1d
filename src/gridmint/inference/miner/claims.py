"""Claiming on chain what gateways acknowledged and did not settle (``gridmint miner claim``).

For each receipt in the miner's book (the latest it signed per line) the chain is asked whether the line still
exists under that id (a reclaimed line has nothing left, and a reopened one has a new id, so receipts of the old
one no longer verify) and what it has paid this miner; a receipt newer than that (more grains and requests, no
fewer tokens: the chain's own rule) is claimable. Claims go per gateway, at most ``CLAIM_GROUP`` entries a
transaction. The chain takes all of a transaction or none, so when one with several entries is refused, its
entries are sent again one by one: one receipt that cannot be paid now does not hold back the others.

``gridmint miner run`` claims by itself too (``claim_forever`` in runner.py): every ``--claim-seconds`` it reviews
the receipts signed longer ago than that and not yet known to be paid, claims those still unpaid, and marks the
paid and the gone ones done. A gateway settles what it acknowledged within its own period, so a receipt unpaid
that long is one the gateway is not settling; claiming it well within the chain's ``close_notice`` is what keeps a
gateway and a consumer acting together from closing the line under the miner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gridmint.chain.credit import NO_LINE, MsgClaim
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.tx import Msg
from gridmint.inference.miner.book import ReceiptBook, SignedReceipt

CLAIMABLE, PAID, LINE_GONE = "claimable", "paid", "line_gone"
# Entries per claim transaction: a claim entry is ~215 bytes, and a transaction at most max_tx_bytes (8,192 by
# default), so 32 fit where the chain's MAX_ENTRIES (256) would be refused as oversize.
CLAIM_GROUP = 32
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
    return review_receipts(chain, book.miner, book.stored())


def review_receipts(chain: Chain, miner_address: bytes, receipts: list[SignedReceipt]) -> list[Review]:
    """``receipts``, each with what the chain has paid on its line and whether it is claimable (chain reads only:
    callable from a worker thread, the book staying on its own)."""
    miner = format_address(miner_address)
    reviews = []
    for signed in receipts:
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
        for start in range(0, len(pending), CLAIM_GROUP):
            group = pending[start:start + CLAIM_GROUP]
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
