"""A miner claims on the real chain (the app driven in process) the receipts a gateway acknowledged and never
settled: paid to the grain, once; a line that is gone is not sent; a receipt the chain refuses does not hold back
the others of its gateway."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import codec
from gridmint.chain.credit import MsgClaim, MsgOpenCredit, MsgRegisterGateway
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.genesis import TxParams
from gridmint.chain.receipts import Receipt, acknowledge_receipt
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister
from gridmint.chain.tx import Msg
from gridmint.client.chain_client import raise_for_code
from gridmint.inference.miner.book import Asked, ReceiptBook
from gridmint.inference.miner.claims import (
    CLAIM_GROUP,
    CLAIMABLE,
    CLAIMED,
    LINE_GONE,
    PAID,
    REFUSED,
    claim,
    claim_entry,
    review,
    review_receipts,
)
from gridmint.inference.miner.runner import gateways_on_chain
from tests.support.chain import CHAIN_ID, MINT, Driver, balance, genesis, key, make_app, signed

NAMES = ("owner", "gateway", "alice", "bob", "carol", "miner", "miner_hot")
HOTKEY, GATEWAY = key("miner_hot"), key("gateway")
MAX_PRICE = 2_000  # grains per 1k tokens the lines pay at most


@dataclass
class Landed:
    height: int


class InProcessChain:
    """The two calls claiming makes of a node, answered by the app: queries from committed state, transactions
    in a block of their own."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.names = {key(name).address: name for name in NAMES}

    def query(self, path: str) -> Any:
        result = self.driver.app.query(path)
        raise_for_code(result.code, result.codespace, result.log)
        return codec.decode(result.value)

    def execute(self, signer: PrivateKey, messages: list[Msg]) -> Landed:
        name = self.names[signer.address]
        self.driver.send(name, *messages)
        (result,) = self.driver.commit()[name]
        raise_for_code(result.code, result.codespace, result.log)
        return Landed(self.driver.height)


@pytest.fixture
def chain(tmp_path: Path) -> InProcessChain:
    driver = Driver(make_app(tmp_path, genesis(accounts=NAMES, balance=1_000 * MINT,
                                               subnets={"params": {"min_lock": MINT}})))
    driver.ok("owner", MsgCreateSubnet("text-generation", "chat"))
    driver.ok("miner", MsgRegister(1, HOTKEY.address, 0))
    driver.ok("gateway", MsgRegisterGateway("https://gateway.example", 100, 10 * MINT))
    for consumer in ("alice", "bob"):
        driver.ok(consumer, MsgOpenCredit(GATEWAY.address, 5 * MINT, 1_000, MAX_PRICE, 100, 0, 0))
    return InProcessChain(driver)


def line_id(chain: InProcessChain, consumer: str) -> int:
    return int(chain.query(f"/credit/line/{format_address(key(consumer).address)}/"
                           f"{format_address(GATEWAY.address)}")["id"])


def signed_book(chain: InProcessChain, *wanted: tuple[str, int, int, int]) -> ReceiptBook:
    """A miner's book holding, for each (consumer, tokens, grains, requests), the receipt it signed."""
    book = ReceiptBook.in_memory(CHAIN_ID, HOTKEY.address)
    sign(chain, book, *wanted)
    return book


def sign(chain: InProcessChain, book: ReceiptBook, *wanted: tuple[str, int, int, int]) -> None:
    asked = []
    for consumer, tokens, grains, requests in wanted:
        line = line_id(chain, consumer) if consumer != "carol" else 99  # carol never opened a line
        receipt = Receipt(CHAIN_ID, line, GATEWAY.address, key(consumer).address, HOTKEY.address, tokens, grains,
                          requests)
        for served in range(requests):  # the miner served these requests (the tokens with the first)
            book.count(format_address(GATEWAY.address), 0 if served else tokens, 0)
        asked.append(Asked(receipt, acknowledge_receipt(GATEWAY, receipt), True))
    outcomes = book.sign(HOTKEY, format_address(GATEWAY.address), GATEWAY.public_key, asked)
    assert all(o.error is None for o in outcomes)


def coldkey_balance(chain: InProcessChain) -> int:
    return balance(chain.driver.app, "miner")


def test_acknowledged_receipts_are_claimed_once_and_paid_to_the_grain(chain: InProcessChain) -> None:
    book = signed_book(chain, ("alice", 1_000, 2_000, 3), ("bob", 500, 1_000, 1))
    before = coldkey_balance(chain)
    reviews = review(chain, book)
    assert [r.state for r in reviews] == [CLAIMABLE, CLAIMABLE]
    claim(chain, HOTKEY, HOTKEY.public_key, reviews)
    assert [r.state for r in reviews] == [CLAIMED, CLAIMED] and reviews[0].height == chain.driver.height
    assert coldkey_balance(chain) - before == 3_000
    assert [r.state for r in review(chain, book)] == [PAID, PAID]  # nothing is sent twice
    sign(chain, book, ("alice", 1_500, 3_000, 5))  # a later cumulative receipt: only the difference is paid
    claim(chain, HOTKEY, HOTKEY.public_key, review(chain, book))
    assert coldkey_balance(chain) - before == 4_000
    assert chain.driver.app.check_invariants() == []


def test_a_line_that_is_gone_is_not_sent_and_a_refused_receipt_does_not_hold_back_the_rest(
        chain: InProcessChain) -> None:
    # bob's receipt asks more than his line's maximum price allows: the chain refuses it, and alone
    book = signed_book(chain, ("alice", 1_000, 2_000, 3), ("bob", 100, 10_000, 1), ("carol", 10, 20, 1))
    before = coldkey_balance(chain)
    reviews = claim(chain, HOTKEY, HOTKEY.public_key, review(chain, book))
    states = {format_address(r.signed.receipt.consumer): (r.state, r.error.split(":")[0]) for r in reviews}
    assert states == {format_address(key("alice").address): (CLAIMED, ""),
                      format_address(key("bob").address): (REFUSED, "credit/above_max_price"),
                      format_address(key("carol").address): (LINE_GONE, "")}
    assert coldkey_balance(chain) - before == 2_000


def test_the_policy_refresh_reads_each_gateways_bond(chain: InProcessChain) -> None:
    assert gateways_on_chain(chain) == {format_address(GATEWAY.address): 10 * MINT}  # type: ignore[arg-type]


def test_periodic_claims_take_only_what_is_due_and_not_known_to_be_paid(chain: InProcessChain) -> None:
    """What ``claim_forever`` does each round: receipts signed before the cut-off and not marked done are
    reviewed; the paid, claimed and gone are marked and skipped by later rounds until a newer receipt comes."""
    book = signed_book(chain, ("alice", 1_000, 2_000, 3), ("carol", 10, 20, 1))
    assert book.stored(due_before=time.time() - 3_600) == []  # signed just now: not due yet
    due = book.stored(due_before=time.time() + 1)
    reviews = claim(chain, HOTKEY, HOTKEY.public_key, review_receipts(chain, book.miner, due))
    assert sorted(r.state for r in reviews) == [CLAIMED, LINE_GONE]
    book.mark_done([r.signed for r in reviews if r.state in (PAID, LINE_GONE, CLAIMED)])
    assert book.stored(due_before=time.time() + 1) == []  # nothing is reviewed again ...
    assert len(book.stored()) == 2  # ... and nothing is forgotten
    sign(chain, book, ("alice", 1_500, 3_000, 5))  # a newer receipt for alice's line is due again
    assert [s.receipt.grains for s in book.stored(due_before=time.time() + 1)] == [3_000]


def test_a_claim_transaction_of_a_full_group_fits_the_chains_size_limit(chain: InProcessChain) -> None:
    book = signed_book(chain, ("alice", 1_000, 2_000, 3))
    [held] = book.stored()
    entry = claim_entry(held, HOTKEY.public_key)
    big = [[entry[0], entry[1], 2**64 - 1, 2**64 - 1, 2**64 - 1, *entry[5:]]] * CLAIM_GROUP  # the widest numbers
    raw = signed(HOTKEY, 2**40, MsgClaim(GATEWAY.address, GATEWAY.public_key, big), fee=10**15)
    assert len(raw) <= TxParams().max_tx_bytes
