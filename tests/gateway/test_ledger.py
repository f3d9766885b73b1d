"""The usage ledger: what is owed survives a restart, batches aggregate per (consumer, miner), and a batch the
chain saw is never sent twice."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain.crypto import format_address
from gridmint.gateway.ledger import Ledger, open_db
from tests.helpers import key

ALICE, BOB = format_address(key("alice").address), format_address(key("bob").address)
M1, M2 = format_address(key("m1").address), format_address(key("m2").address)


def ledger(path: Path, fee_bps: int = 250) -> Ledger:
    return Ledger(open_db(str(path / "gateway.db")), fee_bps)


def test_usage_is_owed_until_confirmed_and_survives_a_restart(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    for grains in (1_000, 2_003, 7):
        book.record(ALICE, M1, grains)
    book.record(ALICE, M2, 500)
    book.record(BOB, M1, 40)
    book.record(BOB, M1, 0)  # free answers are not recorded
    fees = sum(grains * 250 // 10_000 for grains in (1_000, 2_003, 7, 500))
    assert book.owed(ALICE) == 3_510 + fees
    reopened = ledger(tmp_path)
    assert reopened.owed(ALICE) == book.owed(ALICE) and reopened.owed(BOB) == 41
    batch = reopened.next_batch(after=4)
    assert batch is not None and batch.id == 5
    assert [(format_address(c), format_address(m), g, n) for c, m, g, n in batch.entries] == sorted(
        [(ALICE, M1, 3_010, 3), (ALICE, M2, 500, 1), (BOB, M1, 40, 1)])
    assert batch.grains == 3_550 and batch.fee == 3_010 * 250 // 10_000 + 500 * 250 // 10_000 + 40 * 250 // 10_000
    again = reopened.next_batch(after=5)  # its fate unknown: the same batch is sent again, unchanged
    assert again == batch
    reopened.record(ALICE, M1, 100)  # arrives while the batch is out: goes into the next one
    reopened.confirm(batch.id)
    assert reopened.owed(ALICE) == 102 and reopened.owed(BOB) == 0
    following = reopened.next_batch(after=5)
    assert following is not None and following.id == 6 and following.grains == 100


def test_a_refused_batch_is_retried_and_recovery_follows_the_chain(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    book.record(ALICE, M1, 1_000)
    first = book.next_batch(after=0)
    assert first is not None
    book.release(first.id)  # executed and refused on chain: its usage goes into the next batch
    again = book.next_batch(after=0)
    assert again is not None and again.grains == 1_000
    # A crash after sending: the chain's last batch tells whether it landed; until it does, it stays pending.
    restarted = ledger(tmp_path)
    restarted.recover(last_on_chain=again.id - 1)
    assert restarted.pending_batch() == again.id and restarted.owed(ALICE) == 1_025
    restarted.recover(last_on_chain=again.id)
    assert restarted.pending_batch() is None and restarted.unsettled() == 0 and ledger(tmp_path).owed(ALICE) == 0
    assert restarted.next_batch(after=again.id) is None


def test_a_batch_takes_a_consumers_usage_only_as_far_as_its_line_reaches(tmp_path: Path) -> None:
    book = ledger(tmp_path)  # 250 bps: the chain takes grains + grains * 250 // 10_000 per entry
    for grains in (1_000, 2_000, 3_000):
        book.record(ALICE, M1, grains)
    book.record(ALICE, M2, 500)
    book.record(BOB, M1, 40)
    batch = book.next_batch(after=0, limits={ALICE: 3_075, BOB: 100})
    assert batch is not None
    # Alice's line covers her two oldest requests to M1 (3,000 + 75 in fees) and nothing more; Bob's all of his.
    assert [(format_address(c), format_address(m), g, n) for c, m, g, n in batch.entries] == [
        (ALICE, M1, 3_000, 2), (BOB, M1, 40, 1)]
    assert batch.charges == {ALICE: 3_075, BOB: 41}
    book.confirm(batch.id)
    assert book.owed(ALICE) == 3_000 + 75 + 500 + 12 and book.owed(BOB) == 0
    assert book.unbatched_consumers() == [ALICE]
    assert book.next_batch(after=batch.id, limits={ALICE: 0}) is None  # nothing fits until a top-up
    topped_up = book.next_batch(after=batch.id, limits={ALICE: 10_000})
    assert topped_up is not None and topped_up.charges == {ALICE: 3_000 + 75 + 500 + 12}
