"""The usage ledger: what is owed survives a restart, rows carry tokens and a request id, amounts that could
overflow are refused before SQLite, every transaction rolls back on error, and a batch persists its signed entries
so an unknown outcome resends the very same batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gridmint.chain.crypto import format_address
from gridmint.gateway.ledger import MAX_ROW, Cumulative, Entry, Ledger, Usage, charge, open_db, transaction
from tests.support.chain import key

ALICE, BOB = format_address(key("alice").address), format_address(key("bob").address)
M1, M2 = format_address(key("m1").address), format_address(key("m2").address)
FEE = 250


def ledger(path: Path) -> Ledger:
    return Ledger(open_db(str(path / "gateway.db")))


def usage(consumer: str, miner: str, grains: int, tokens: int = 10, line: int = 1, request: str = "r") -> Usage:
    return Usage(request, consumer, line, miner, tokens, grains, FEE)


def entry_for(book: Ledger, consumer: str, line: int, miner: str) -> Entry:
    """The entry a settlement would make of every unbatched row of (consumer, line, miner), signature faked (the
    ledger stores what it is given; the chain and the miners' client check signatures)."""
    [group] = [g for g in book.unbatched() if (g.consumer, g.line, g.miner) == (consumer, line, miner)]
    last = group.rows[-1][0]
    tokens, grains, requests = group.upto(last)
    held = book.held(line, miner).plus(tokens, grains, requests)
    return Entry(consumer, line, miner, b"k" * 32, held.tokens, held.grains, held.requests, b"s" * 64, grains,
                 grains * FEE // 10_000, last)


def test_usage_is_owed_until_confirmed_and_survives_a_restart(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    for index, grains in enumerate((1_000, 2_003, 7)):
        book.record(usage(ALICE, M1, grains, tokens=grains * 2, request=f"a{index}"))
    book.record(usage(ALICE, M2, 500))
    book.record(usage(BOB, M1, 40))
    book.record(usage(BOB, M1, 0))  # free answers are owed nothing and never settled
    assert book.owed(ALICE) == sum(charge(g, FEE) for g in (1_000, 2_003, 7, 500))
    assert charge(7, FEE) == 8  # rounded up per row: never less than the chain's fee on any sum
    reopened = ledger(tmp_path)
    assert reopened.owed(ALICE) == book.owed(ALICE) and reopened.owed(BOB) == 41
    assert [(u["request"], u["tokens"], u["grains"], u["state"]) for u in reopened.usage_of(ALICE)][:3] == [
        ("a0", 2_000, 1_000, "unsettled"), ("a1", 4_006, 2_003, "unsettled"), ("a2", 14, 7, "unsettled")]

    groups = reopened.unbatched()
    assert [(g.consumer, g.miner, g.upto(10**9)) for g in groups] == [
        (ALICE, M1, (6_020, 3_010, 3)), (ALICE, M2, (10, 500, 1)), (BOB, M1, (10, 40, 1))]
    first = reopened.open_batch(reopened.next_batch_id(after=4), [entry_for(reopened, ALICE, 1, M1)])
    assert first.id == 5 and first.grains == 3_010 and first.charges == {ALICE: 3_010 + 75}
    # Its fate unknown (a crash, a timeout): after a restart the very same batch, signed entries and all, is sent.
    restarted = ledger(tmp_path)
    assert restarted.pending_batch() == first and restarted.pending_batch().settled == first.settled  # type: ignore[union-attr]
    restarted.recover(last_on_chain=4)
    assert restarted.pending_batch() == first
    restarted.record(usage(ALICE, M1, 100))  # arrives while the batch is out: goes into the next one
    restarted.recover(last_on_chain=5)  # the chain saw it: settled, its receipt is the base of the next
    assert restarted.pending_batch() is None
    assert restarted.held(1, M1) == Cumulative(6_020, 3_010, 3)
    assert restarted.owed(ALICE) == charge(500, FEE) + charge(100, FEE)
    assert restarted.usage_of(ALICE)[0]["state"] == "settled" and restarted.usage_of(ALICE)[0]["batch"] == 5
    second = entry_for(restarted, ALICE, 1, M1)
    assert (second.tokens, second.grains, second.requests, second.delta) == (6_030, 3_110, 4, 100)  # cumulative
    assert restarted.receipts_of(ALICE)[0] == {"line": 1, "miner": M1, "miner_key": "6b" * 32, "tokens": 6_020,
                                               "grains": 3_010, "requests": 3, "signature": "73" * 64, "batch": 5}


def test_a_refused_batch_frees_its_rows(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    book.record(usage(ALICE, M1, 1_000))
    batch = book.open_batch(1, [entry_for(book, ALICE, 1, M1)])
    assert book.unbatched() == []
    book.release(batch.id)  # executed and refused on chain: its usage goes into the next batch
    assert book.pending_batch() is None and [g.upto(10**9) for g in book.unbatched()] == [(10, 1_000, 1)]
    assert book.held(1, M1) == Cumulative() and book.owed(ALICE) == charge(1_000, FEE)


@pytest.mark.parametrize("field", ["grains", "tokens"])
def test_amounts_beyond_a_row_are_refused_before_sqlite_and_change_nothing(tmp_path: Path, field: str) -> None:
    book = ledger(tmp_path)
    book.record(usage(ALICE, M1, 5))
    huge = {"grains": 2**64 - 1, "tokens": 10}[field], {"grains": 5, "tokens": MAX_ROW + 1}[field]
    with pytest.raises(ValueError, match="out of bounds"):
        book.record(usage(ALICE, M1, huge[0], tokens=huge[1]))
    book.record(usage(ALICE, M1, MAX_ROW, tokens=MAX_ROW))  # the bound itself fits
    book.record(usage(ALICE, M1, MAX_ROW, tokens=MAX_ROW))  # and sums of rows past 2^63 do not overflow
    book.flush()
    assert book.owed(ALICE) == charge(5, FEE) + 2 * charge(MAX_ROW, FEE)
    assert book.unsettled() == 5 + 2 * MAX_ROW
    assert book.unbatched()[0].upto(10**9) == (10 + 2 * MAX_ROW, 5 + 2 * MAX_ROW, 3)
    assert ledger(tmp_path).owed(ALICE) == book.owed(ALICE)


def test_every_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    book.record(usage(ALICE, M1, 1_000))
    with pytest.raises(sqlite3.IntegrityError):  # batch id 1 twice: the second insert fails inside its BEGIN
        book.open_batch(1, [entry_for(book, ALICE, 1, M1)])
        book.open_batch(1, [])
    assert not book.db.in_transaction  # rolled back, not left open for every later write to fail on
    book.record(usage(BOB, M2, 3))
    book.flush()
    assert [g.consumer for g in book.unbatched()] == [BOB]
    with pytest.raises(RuntimeError), transaction(book.db):
        book.db.execute("DELETE FROM metered")
        raise RuntimeError("fails half way")
    assert not book.db.in_transaction and ledger(tmp_path).owed(BOB) == charge(3, FEE)
    assert ledger(tmp_path).pending_batch() is not None  # the first batch, committed before, is still there


def test_a_failed_flush_keeps_its_rows_for_the_next(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    book.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON metered BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.DatabaseError, match="disk full"):
        book.record(usage(ALICE, M1, 7))  # outside an event loop: flushed at once, and it fails
    assert not book.db.in_transaction
    book.db.execute("DROP TRIGGER refuse")
    book.record(usage(ALICE, M1, 8))
    assert [g.upto(10**9) for g in book.unbatched()] == [(20, 15, 2)]


def test_usage_is_listed_page_by_page_and_by_line(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    for index in range(5):
        book.record(usage(ALICE, M1, 10 + index, line=1 + index % 2, request=f"a{index}"))
    book.record(usage(BOB, M1, 99, request="b0"))
    first = book.usage_of(ALICE, limit=2)
    second = book.usage_of(ALICE, after=first[-1]["id"], limit=2)
    third = book.usage_of(ALICE, after=second[-1]["id"], limit=2)
    assert [u["request"] for u in first + second + third] == ["a0", "a1", "a2", "a3", "a4"]
    assert [u["request"] for u in book.usage_of(ALICE, line=2)] == ["a1", "a3"]
    assert book.usage_of(ALICE, after=third[-1]["id"]) == []
