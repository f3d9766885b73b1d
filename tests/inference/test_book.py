"""The miner's book: what it served each gateway survives a restart, and the receipts it signs stay within it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gridmint.chain.crypto import format_address
from gridmint.chain.receipts import Receipt, acknowledge_receipt, miner_signed
from gridmint.inference.miner.book import (
    BAD_ACK,
    BELOW_LAST,
    BELOW_PRICE,
    BEYOND_SERVED,
    CONSUMER_CHANGED,
    Asked,
    ReceiptBook,
    Served,
    cost,
    open_db,
)
from tests.support.chain import CHAIN_ID, key

MINER, GATEWAY, ALICE, BOB = key("miner-hot"), key("gateway"), key("alice"), key("bob")
GW = format_address(GATEWAY.address)
PRICE = 1_500  # grains per 1k tokens: 7 tokens cost 10.5, rounded up to 11


def book_at(path: Path) -> ReceiptBook:
    return ReceiptBook(open_db(str(path)), CHAIN_ID, MINER.address)


def receipt(line: int, tokens: int, grains: int, requests: int, consumer: bytes = ALICE.address) -> Receipt:
    return Receipt(CHAIN_ID, line, GATEWAY.address, consumer, MINER.address, tokens, grains, requests)


def ask(book: ReceiptBook, *receipts: Receipt, good_ack: bool = True) -> list[tuple[bytes | None, str | None]]:
    asked = [Asked(r, acknowledge_receipt(GATEWAY, r), good_ack) for r in receipts]
    return [(o.signature, o.error) for o in book.sign(MINER, GW, GATEWAY.public_key, asked)]


def test_counts_per_gateway_at_the_miners_price() -> None:
    book = ReceiptBook.in_memory(CHAIN_ID, MINER.address)
    book.count(GW, 7, PRICE)
    book.count(GW, 3, PRICE)
    book.count("gm1other", 5, PRICE)
    assert book.served(GW) == Served(tokens=10, requests=2, grains=cost(7, PRICE) + cost(3, PRICE))
    assert cost(7, PRICE) == 11 and book.exposure(GW) == 11 + 5
    assert book.served("gm1other").requests == 1 and book.served("gm1nobody") == Served()


def test_counts_are_on_disk_at_the_end_of_the_turn_and_survive_a_restart(tmp_path: Path) -> None:
    book = book_at(tmp_path / "book.db")
    reader = sqlite3.connect(tmp_path / "book.db")

    async def serve() -> tuple[int, int]:
        for _ in range(3):
            book.count(GW, 7, PRICE)
        in_turn = reader.execute("SELECT COUNT(*) FROM served").fetchone()[0]
        await asyncio.sleep(0)  # the end of this turn: the write queued by the first count has run
        first = int(reader.execute("SELECT requests FROM served").fetchone()[0])
        book.count(GW, 5, PRICE)  # the next turn updates the row in place
        await asyncio.sleep(0)
        return in_turn, first, int(reader.execute("SELECT requests FROM served").fetchone()[0])

    assert asyncio.run(serve()) == (0, 3, 4)  # one write for the three answers, after them; then one more
    reopened = book_at(tmp_path / "book.db")  # a crash now loses nothing: the process never closed the book
    assert reopened.served(GW) == Served(tokens=26, requests=4, grains=33 + cost(5, PRICE))


def test_a_receipt_within_what_was_served_is_signed_and_kept(tmp_path: Path) -> None:
    book = book_at(tmp_path / "book.db")
    for _ in range(4):
        book.count(GW, 25, PRICE)
    first = receipt(line=1, tokens=60, grains=90, requests=2)
    [(signature, error)] = ask(book, first)
    assert error is None and signature is not None and miner_signed(first, MINER.public_key, signature)
    assert book.exposure(GW) == 4 * cost(25, PRICE) - 90
    reopened = book_at(tmp_path / "book.db")
    [kept] = reopened.stored()
    assert kept.receipt == first and kept.signature == signature and kept.gateway_key == GATEWAY.public_key
    assert kept.ack == acknowledge_receipt(GATEWAY, first)
    assert reopened.served(GW).signed_tokens == 60 and reopened.served(GW).signed_requests == 2
    [(again, error)] = ask(reopened, first)  # the same receipt again: signed again, nothing more consumed
    assert (again, error) == (signature, None) and reopened.served(GW).signed_tokens == 60


def test_receipts_per_line_never_go_down() -> None:
    book = ReceiptBook.in_memory(CHAIN_ID, MINER.address)
    for _ in range(4):
        book.count(GW, 25, PRICE)
    assert ask(book, receipt(1, 50, 75, 2))[0][1] is None
    for lower in (receipt(1, 49, 75, 2), receipt(1, 50, 74, 2), receipt(1, 50, 75, 1)):
        assert ask(book, lower) == [(None, BELOW_LAST)]
    assert book.last(GW, 1) is not None and book.last(GW, 1).receipt.tokens == 50  # type: ignore[union-attr]
    assert book.served(GW).signed_tokens == 50
    assert ask(book, receipt(1, 100, 150, 4))[0][1] is None  # the next, cumulative, covers the rest
    assert book.served(GW).signed_tokens == 100 and book.served(GW).signed_requests == 4


def test_the_increments_signed_sum_to_at_most_what_was_served() -> None:
    book = ReceiptBook.in_memory(CHAIN_ID, MINER.address)
    for _ in range(4):
        book.count(GW, 25, PRICE)  # 100 tokens, 4 requests
    outcomes = ask(book, receipt(1, 60, 90, 2), receipt(2, 50, 75, 2, consumer=BOB.address),
                   receipt(3, 40, 60, 2, consumer=BOB.address))
    assert [error for _, error in outcomes] == [None, BEYOND_SERVED, None]  # 60 + 50 > 100; 60 + 40 fits
    assert book.last(GW, 2) is None
    assert ask(book, receipt(4, 0, 0, 1, consumer=BOB.address)) == [(None, BEYOND_SERVED)]  # requests are spent
    book.count(GW, 10, PRICE)
    assert ask(book, receipt(2, 10, 15, 1, consumer=BOB.address))[0][1] is None
    served = book.served(GW)
    assert (served.signed_tokens, served.signed_requests) == (110, 5) == (served.tokens, served.requests)


def test_the_same_line_twice_in_one_call_counts_from_the_first() -> None:
    book = ReceiptBook.in_memory(CHAIN_ID, MINER.address)
    for _ in range(4):
        book.count(GW, 25, PRICE)
    outcomes = ask(book, receipt(1, 60, 90, 2), receipt(1, 100, 150, 4), receipt(1, 90, 150, 4))
    assert [error for _, error in outcomes] == [None, None, BELOW_LAST]
    assert book.last(GW, 1).receipt.tokens == 100  # type: ignore[union-attr]
    assert book.served(GW).signed_tokens == 100


def test_a_bad_ack_or_another_consumer_signs_and_stores_nothing() -> None:
    book = ReceiptBook.in_memory(CHAIN_ID, MINER.address)
    for _ in range(4):
        book.count(GW, 25, PRICE)
    assert ask(book, receipt(1, 10, 15, 1), good_ack=False) == [(None, BAD_ACK)]
    assert book.stored() == [] and book.served(GW).signed_tokens == 0
    assert ask(book, receipt(1, 10, 15, 1))[0][1] is None
    assert ask(book, receipt(1, 20, 30, 2, consumer=BOB.address)) == [(None, CONSUMER_CHANGED)]
    assert [s.receipt.consumer for s in book.stored()] == [ALICE.address]
    assert book.served(GW).signed_tokens == 10


def test_receipts_of_another_chain_are_kept_apart(tmp_path: Path) -> None:
    book = book_at(tmp_path / "book.db")
    book.count(GW, 25, PRICE)
    assert ask(book, receipt(1, 25, 38, 1))[0][1] is None
    other = ReceiptBook(open_db(str(tmp_path / "book.db")), "another-chain", MINER.address)
    assert other.stored() == [] and other.served(GW) == Served()


def test_a_receipt_paying_below_the_floor_is_not_signed() -> None:
    """A signed receipt is final: a gateway asking the miner to sign for everything served at a grain would have
    it paid a grain. The floor (the app gives half the announced price) refuses that and stores nothing."""
    book = ReceiptBook.in_memory(CHAIN_ID, MINER.address)
    book.count(GW, 100, PRICE)
    floor = PRICE // 2  # 750 grains per 1k tokens: 100 tokens at least 75 grains
    asked = [Asked(r, acknowledge_receipt(GATEWAY, r), True) for r in (receipt(1, 100, 1, 1), receipt(1, 100, 74, 1))]
    assert [o.error for o in book.sign(MINER, GW, GATEWAY.public_key, asked, floor)] == [BELOW_PRICE, BELOW_PRICE]
    assert book.last(GW, 1) is None and book.served(GW).signed_tokens == 0
    fair = receipt(1, 100, 75, 1)
    [outcome] = book.sign(MINER, GW, GATEWAY.public_key, [Asked(fair, acknowledge_receipt(GATEWAY, fair), True)],
                          floor)
    assert outcome.error is None and miner_signed(fair, MINER.public_key, outcome.signature or b"")
