from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gridmint.chain import lthash
from gridmint.chain.errors import ChainError
from gridmint.chain.store import Store


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
