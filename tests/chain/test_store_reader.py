"""A store's read-only reader on another thread: it sees one committed height per snapshot, whatever the writer
commits meanwhile, and it cannot write."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from gridmint.chain.errors import ChainError
from gridmint.chain.store import Store


def _commit(store: Store, changes: dict[bytes, bytes | None]) -> None:
    store.commit(store.height + 1, changes, store.digest_with(changes))


def test_a_snapshot_keeps_its_height_while_the_writer_commits(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    _commit(store, {b"k": b"1", b"p/a": b"x"})
    reader = store.open_reader()
    seen: list[tuple[int, bytes | None, list[bytes], bytes | None]] = []
    inside, committed = threading.Event(), threading.Event()

    def read() -> None:  # on another thread, as the query workers read
        with reader.read_snapshot() as snapshot:
            inside.set()
            committed.wait(10)
            seen.append((snapshot.height, snapshot.get(b"k"), [k for k, _ in snapshot.scan(b"p/")],
                         snapshot.get_at(b"k", snapshot.height)))
        with reader.read_snapshot() as snapshot:
            seen.append((snapshot.height, snapshot.get(b"k"), [k for k, _ in snapshot.scan(b"p/")],
                         snapshot.get_at(b"k", snapshot.height)))

    worker = threading.Thread(target=read)
    worker.start()
    inside.wait(10)
    _commit(store, {b"k": b"2", b"p/b": b"y"})  # lands while the first snapshot is open
    committed.set()
    worker.join(10)
    assert seen == [(1, b"1", [b"p/a"], b"1"), (2, b"2", [b"p/a", b"p/b"], b"2")]
    assert store.height == 2  # the writer's own view is its own
    reader.close()
    store.close()


def test_a_reader_cannot_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    _commit(store, {b"k": b"1"})
    reader = store.open_reader()
    with reader.read_snapshot(), pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._db.execute("INSERT INTO state (key, value) VALUES (?, ?)", (b"x", b"y"))
    assert store.get(b"x") is None and reader.height == 1
    reader.close()
    store.close()


def test_a_reader_opened_before_pruning_refuses_the_heights_pruned_since(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", keep_recent=2)
    _commit(store, {b"k": b"1"})
    reader = store.open_reader()  # copies the writer's pruned_through, which later commits move on
    for value in (b"2", b"3", b"4", b"5"):
        _commit(store, {b"k": value})
    with reader.read_snapshot() as snapshot:
        assert snapshot.height == 5 and snapshot.earliest_height == store.earliest_height > 1
        assert snapshot.get_at(b"k", 5) == b"5"
        with pytest.raises(ChainError, match="was pruned"):
            snapshot.get_at(b"k", 1)
    reader.close()
    store.close()
