"""Versioned key-value state on disk (SQLite), written atomically at commit.

Tables:
- ``state(key, value)``: the latest committed value of every key.
- ``history(key, height, value)``: every value a key took, by the height that wrote it (NULL = deleted), so
  queries can read any committed height.
- ``meta(name, value)``: ``height``, ``app_hash`` and ``lthash`` (the LtHash digest of all of ``state``).

A commit writes the changes of one block, the new digest and the new height in one SQLite transaction with
``synchronous=FULL`` in WAL mode: a process killed at any moment reopens at the last committed height, with
the state and the app hash of that height and nothing of the block that was being written.
"""

from __future__ import annotations

import contextlib
import copy
import sqlite3
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from gridmint.chain import lthash
from gridmint.chain.errors import HEIGHT_UNAVAILABLE

Changes = Mapping[bytes, bytes | None]  # key -> new value, None to delete

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    key BLOB NOT NULL, height INTEGER NOT NULL, value BLOB, PRIMARY KEY (key, height)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no upper bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class Store:
    """The committed state. Reads see only committed data; ``commit`` is the only writer."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.height = int.from_bytes(self._meta("height") or b"", "big")
        stored_lanes = self._meta("lthash")
        self.lanes = (
            np.frombuffer(stored_lanes, dtype="<u2").astype(lthash.LANE_DTYPE) if stored_lanes else lthash.empty()
        )
        self.app_hash = lthash.checksum(self.lanes)

    def _meta(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        self._db.close()

    # --- reads -----------------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def get_at(self, key: bytes, height: int) -> bytes | None:
        """The value ``key`` had once block ``height`` was committed."""
        self._check_height(height)
        row = self._db.execute(
            "SELECT value FROM history WHERE key = ? AND height <= ? ORDER BY height DESC LIMIT 1", (key, height)
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def scan(self, prefix: bytes, height: int | None = None, below: bytes | None = None
             ) -> Iterator[tuple[bytes, bytes]]:
        """Committed ``(key, value)`` pairs under ``prefix`` (and before ``below``) in key order, latest or at
        ``height``. A bounded range reads only what it returns: queues ordered by block stay cheap."""
        end = prefix_end(prefix)
        if below is not None and (end is None or below < end):
            end = below
        upper = "AND key < ?" if end is not None else ""
        args: tuple[object, ...] = (prefix, end) if end is not None else (prefix,)
        if height is None:
            rows = self._db.execute(f"SELECT key, value FROM state WHERE key >= ? {upper} ORDER BY key", args)  # noqa: S608
        else:
            self._check_height(height)
            rows = self._db.execute(
                f"""SELECT h.key, h.value FROM history h
                    WHERE h.key >= ? {upper} AND h.height = (
                        SELECT MAX(height) FROM history WHERE key = h.key AND height <= ?)
                    ORDER BY h.key""",  # noqa: S608
                (*args, height),
            )
        for key, value in rows.fetchall():
            if value is not None:
                yield bytes(key), bytes(value)

    def all_pairs(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.execute("SELECT key, value FROM state ORDER BY key"):
            yield bytes(key), bytes(value)

    def _check_height(self, height: int) -> None:
        if not 0 < height <= self.height:
            raise HEIGHT_UNAVAILABLE(f"height {height} is not committed; the latest committed height is {self.height}")

    # --- hashing and commit ----------------------------------------------------------------------------

    def digest_with(self, changes: Changes) -> lthash.Lanes:
        """The LtHash of the committed state with ``changes`` applied (nothing is written)."""
        added: list[tuple[bytes, bytes]] = []
        removed: list[tuple[bytes, bytes]] = []
        for key in sorted(changes):
            old = self.get(key)
            new = changes[key]
            if old == new:
                continue
            if old is not None:
                removed.append((key, old))
            if new is not None:
                added.append((key, new))
        return lthash.combine(self.lanes, added, removed)

    def commit(self, height: int, changes: Changes, lanes: lthash.Lanes) -> bytes:
        """Write one block's changes and its digest atomically; returns the new app hash."""
        if height != self.height + 1:
            raise ValueError(f"commit of height {height} after height {self.height}")
        keys = sorted(changes)
        upserts = [(k, changes[k]) for k in keys if changes[k] is not None]
        deletes = [(k,) for k in keys if changes[k] is None]
        app_hash = lthash.checksum(lanes)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", upserts)
            db.executemany("DELETE FROM state WHERE key = ?", deletes)
            db.executemany(
                "INSERT OR REPLACE INTO history (key, height, value) VALUES (?, ?, ?)",
                [(k, height, changes[k]) for k in keys],
            )
            db.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                [("height", height.to_bytes(8, "big")), ("lthash", lanes.astype("<u2").tobytes()),
                 ("app_hash", app_hash)],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.height = height
        self.lanes = lanes.copy()
        self.app_hash = app_hash
        return app_hash

    def recompute_digest(self) -> lthash.Lanes:
        """The digest of the whole committed state from scratch: must equal ``lanes`` (tests check it)."""
        return lthash.of_pairs(self.all_pairs())

    # --- readers on other threads ----------------------------------------------------------------------

    def open_reader(self) -> Store:
        """This store on a second, read-only SQLite connection, for queries on another thread: in WAL mode it
        reads while ``commit`` writes. Read it inside ``read_snapshot``; it never writes."""
        reader = copy.copy(self)
        uri = f"file:{urllib.parse.quote(self.path)}?mode=ro"
        reader._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        return reader

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[Store]:
        """Every read inside sees one committed height (the latest when it began), whatever commits meanwhile:
        one read transaction, with ``height`` (and anything else from ``meta`` that reads check) taken from it."""
        self._db.execute("BEGIN")
        try:
            self.height = int.from_bytes(self._meta("height") or b"", "big")
            yield self
        finally:
            self._db.execute("COMMIT")
