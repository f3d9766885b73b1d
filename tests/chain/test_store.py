from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gridmint.chain import lthash
from gridmint.chain import store as store_module
from gridmint.chain.app import App
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.store import Store
from tests.support.chain import Chain, genesis, key


def test_commit_is_incremental_and_matches_a_full_recomputation(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    changes_per_block: list[dict[bytes, bytes | None]] = [
        {b"a": b"1", b"b": b"2", b"c": b"3"},
        {b"a": b"10", b"b": None},
        {b"d": b"4", b"c": None, b"zz": b""},
    ]
    for height, changes in enumerate(changes_per_block, start=1):
        store.commit(height, changes, store.digest_with(changes))
        assert np.array_equal(store.recompute_digest(), store.lanes)
    assert dict(store.all_pairs()) == {b"a": b"10", b"d": b"4", b"zz": b""}


def test_app_hash_depends_on_state_not_on_history(tmp_path: Path) -> None:
    one, two = Store(tmp_path / "1.sqlite"), Store(tmp_path / "2.sqlite")
    one.commit(1, {b"k": b"v", b"x": b"y"}, one.digest_with({b"k": b"v", b"x": b"y"}))
    two.commit(1, {b"k": b"old"}, two.digest_with({b"k": b"old"}))
    two.commit(2, {b"k": b"v", b"x": b"y"}, two.digest_with({b"k": b"v", b"x": b"y"}))
    assert one.app_hash == two.app_hash
    assert one.app_hash != lthash.checksum(lthash.empty())


def test_state_survives_reopening_and_history_answers_old_heights(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    store.commit(1, {b"k": b"1"}, store.digest_with({b"k": b"1"}))
    store.commit(2, {b"k": b"2", b"j": b"x"}, store.digest_with({b"k": b"2", b"j": b"x"}))
    store.commit(3, {b"k": None}, store.digest_with({b"k": None}))
    app_hash = store.app_hash
    store.close()
    reopened = Store(path)
    assert (reopened.height, reopened.app_hash) == (3, app_hash)
    assert reopened.get(b"k") is None
    assert reopened.get_at(b"k", 1) == b"1" and reopened.get_at(b"k", 2) == b"2" and reopened.get_at(b"k", 3) is None
    assert list(reopened.scan(b"", height=2)) == [(b"j", b"x"), (b"k", b"2")]
    with pytest.raises(ChainError) as caught:
        reopened.get_at(b"k", 4)
    assert caught.value.kind.name == "height_unavailable"


def test_a_failed_commit_leaves_the_previous_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.commit(1, {b"k": b"1"}, store.digest_with({b"k": b"1"}))
    before = store.app_hash
    with pytest.raises(sqlite3.Error):
        store.commit(2, {b"k": b"2", b"bad": object()}, store.digest_with({b"k": b"2"}))  # type: ignore[dict-item]
    reopened = Store(tmp_path / "s.sqlite")
    assert (reopened.height, reopened.app_hash, reopened.get(b"k")) == (1, before, b"1")


def test_prefix_scan_is_ordered_and_bounded(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    changes = {b"p/\xff": b"1", b"p/a": b"2", b"q": b"3", b"p\xff": b"4", b"o": b"5"}
    store.commit(1, changes, store.digest_with(changes))
    assert [k for k, _ in store.scan(b"p/")] == [b"p/a", b"p/\xff"]


# --- history only of changes, and pruning --------------------------------------------------------------------


def _commit(store: Store, changes: dict[bytes, bytes | None]) -> bytes:
    return store.commit(store.height + 1, changes, store.digest_with(changes))


def _history_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM history").fetchone()[0])


def test_a_write_of_the_value_already_there_adds_no_history_row_and_keeps_the_app_hash(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    _commit(store, {b"a": b"1", b"b": b"2"})
    rows, app_hash = _history_rows(tmp_path / "s.sqlite"), store.app_hash
    _commit(store, {b"a": b"1", b"b": b"2", b"gone": None})  # the same values, and a deletion of nothing
    assert _history_rows(tmp_path / "s.sqlite") == rows
    assert store.app_hash == app_hash and store.height == 2
    assert store.get_at(b"a", 2) == b"1" and store.get_at(b"gone", 2) is None
    _commit(store, {b"a": b"1", b"b": b"3"})
    assert _history_rows(tmp_path / "s.sqlite") == rows + 1
    assert [store.get_at(b"b", h) for h in (1, 2, 3)] == [b"2", b"2", b"3"]


def _random_blocks(seed: int, count: int, keys: int = 24) -> list[dict[bytes, bytes | None]]:
    """Blocks that write, rewrite unchanged, delete and recreate keys; some keys are written once, early."""
    rng = random.Random(seed)
    names = [f"k/{i:02d}".encode() for i in range(keys)]
    blocks: list[dict[bytes, bytes | None]] = [{b"once/early": b"x", b"once/deleted": b"y"}]
    for height in range(2, count + 1):
        block: dict[bytes, bytes | None] = {}
        for name in rng.sample(names, rng.randrange(0, 8)):
            roll = rng.random()
            block[name] = None if roll < 0.25 else b"same" if roll < 0.5 else f"{height}".encode()
        if height == 5:
            block[b"once/deleted"] = None
        blocks.append(block)
    return blocks


def _answers(store: Store, height: int) -> tuple[list[tuple[bytes, bytes]], list[bytes | None]]:
    keys = [b"once/early", b"once/deleted", b"never", *(f"k/{i:02d}".encode() for i in range(24))]
    return list(store.scan(b"", height=height)), [store.get_at(key, height) for key in keys]


@pytest.mark.parametrize("keep_recent", [1, 7, 40])
def test_a_pruned_store_answers_every_retained_height_as_an_archive_does(tmp_path: Path, keep_recent: int) -> None:
    archive, pruned = Store(tmp_path / "a.sqlite"), Store(tmp_path / "p.sqlite", keep_recent=keep_recent)
    for block in _random_blocks(seed=keep_recent, count=150):
        assert _commit(archive, block) == _commit(pruned, block)  # pruning never moves the app hash
        top = pruned.height
        assert pruned.earliest_height == max(1, top - keep_recent + 1)
        for height in range(pruned.earliest_height, top + 1):
            assert _answers(pruned, height) == _answers(archive, height), (top, height)
    assert np.array_equal(pruned.recompute_digest(), pruned.lanes)
    assert list(pruned.all_pairs()) == list(archive.all_pairs())
    assert _history_rows(tmp_path / "p.sqlite") < _history_rows(tmp_path / "a.sqlite")


def test_a_pruned_height_is_refused_with_a_coded_error_that_names_the_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", keep_recent=10)
    for height in range(1, 31):
        _commit(store, {b"k": str(height).encode()})
    assert store.get_at(b"k", 21) == b"21"
    for query in (lambda: store.get_at(b"k", 20), lambda: list(store.scan(b"k", height=3))):
        with pytest.raises(ChainError) as caught:
            query()
        assert (caught.value.module, caught.value.code) == ("query", 3)
        assert "was pruned; this node keeps the last 10 heights, the oldest available is 21" in caught.value.message


def test_a_query_at_a_pruned_height_through_the_app_answers_the_code(tmp_path: Path) -> None:
    app = App(Store(tmp_path / "state.sqlite", keep_recent=5))
    app.init_chain(genesis())
    chain = Chain(app)
    for _ in range(12):
        chain.block()
    address = format_address(key("alice").address)
    assert app.query(f"/bank/balance/{address}", height=8).code == 0
    answer = app.query(f"/bank/balance/{address}", height=7)
    assert (answer.codespace, answer.code) == ("query", 3)
    assert "oldest available is 8" in answer.log


def test_under_a_steady_workload_history_stops_growing(tmp_path: Path) -> None:
    """Every block rewrites the same keys with new values: past keep_recent heights the rows stay put and the
    pages in use level off (SQLite reuses the freed ones), while an archive grows with every block."""
    pruned, archive = Store(tmp_path / "p.sqlite", keep_recent=20), Store(tmp_path / "a.sqlite")
    rows, used = {}, {}
    for height in range(1, 301):
        block = {f"k/{i}".encode(): f"{height}:{i}".encode() * 50 for i in range(30)}
        _commit(pruned, block)
        _commit(archive, block)
        if height % 20 == 0:
            rows[height] = (_history_rows(tmp_path / "p.sqlite"), _history_rows(tmp_path / "a.sqlite"))
            used[height] = (pruned.bytes_in_use(), archive.bytes_in_use())
    assert {pruned_rows for pruned_rows, _ in rows.values()} == {20 * 30}
    assert rows[300][1] == 300 * 30
    assert used[300][0] <= used[100][0] * 1.25  # B-tree pages settle within a few windows
    assert used[300][1] >= used[100][1] * 2.5


def test_pruning_survives_reopening_and_catches_up_in_bounded_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.sqlite"
    archive, store = Store(tmp_path / "a.sqlite"), Store(path)  # both archives at first
    blocks = _random_blocks(seed=3, count=120)
    blocks[9] = {f"wide/{i:03d}".encode(): b"v" for i in range(60)}  # one block wider than the batch below
    for block in blocks[:80]:
        _commit(archive, block)
        _commit(store, block)
    store.close()
    monkeypatch.setattr(store_module, "PRUNE_ROWS_PER_COMMIT", 32)
    store = Store(path, keep_recent=10)  # pruning switched on at height 80: 70 heights to catch up
    assert store.earliest_height == 1
    seen = [store.earliest_height]
    for block in blocks[80:110]:
        _commit(archive, block)
        _commit(store, block)
        seen.append(store.earliest_height)
        for height in range(store.earliest_height, store.height + 1):
            assert _answers(store, height) == _answers(archive, height)
    assert seen[-1] == 110 - 10 + 1  # caught up
    assert seen[1] < 71 and seen == sorted(seen)  # several commits, each a bounded batch
    assert 10 in seen  # the height wider than the batch was pruned by itself, whole
    store.close()
    store = Store(path, keep_recent=10)
    assert (store.height, store.earliest_height, store.app_hash) == (110, 101, archive.app_hash)
    for block in blocks[110:]:
        _commit(archive, block)
        _commit(store, block)
    for height in range(store.earliest_height, store.height + 1):
        assert _answers(store, height) == _answers(archive, height)
    store.close()
    store = Store(path)  # an archive from now on: what was pruned stays pruned, nothing more is
    _commit(store, {b"k/00": b"after"})
    assert store.earliest_height == 111
    with pytest.raises(ChainError, match="pruned its history before"):
        store.get_at(b"k/00", 110)


def test_keep_recent_cannot_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_recent"):
        Store(tmp_path / "s.sqlite", keep_recent=-1)


def test_a_chain_from_an_exported_genesis_commits_first_at_its_initial_height(tmp_path: Path) -> None:
    store = Store(tmp_path / "late.sqlite", keep_recent=3)
    store.commit(17, {b"k": b"v"}, store.digest_with({b"k": b"v"}))
    assert store.height == 17 and store.earliest_height == 17 and store.get_at(b"k", 17) == b"v"
    with pytest.raises(ChainError, match="oldest available is 17"):
        store.get_at(b"k", 16)  # before the chain started here: nothing to answer from
    with pytest.raises(ValueError, match="commit of height 19 after height 17"):
        store.commit(19, {}, store.lanes)
    for height in range(18, 22):
        store.commit(height, {b"k": str(height).encode()}, store.digest_with({b"k": str(height).encode()}))
    assert store.earliest_height == 19 and store.get_at(b"k", 19) == b"19"  # pruning goes on from there
