"""Versioned key-value state on disk (SQLite), written atomically at commit.

Tables:
- ``state(key, value)``: the latest committed value of every key.
- ``history(key, height, value)``: the values a key took, by the height that wrote it (NULL = deleted), so
  queries can read any retained height. A row is written only when a block changed the key's value: a block
  that writes back what was there leaves no trace.
- ``meta(name, value)``: ``height``, ``app_hash``, ``lthash`` (the LtHash digest of all of ``state``) and
  ``pruned_through`` (the oldest height whose answers history still holds, once it has been pruned).

A commit writes the changes of one block, the new digest and the new height in one SQLite transaction with
``synchronous=FULL`` in WAL mode: a process killed at any moment reopens at the last committed height, with
the state and the app hash of that height and nothing of the block that was being written.

Pruning (``keep_recent`` > 0) keeps the answers of the last ``keep_recent`` heights. Retaining heights from O on
needs, per key, every row above O and the newest row at or below O (a key last written long ago is read from that
one); rows below it are obsolete, and so is that row itself when it is a deletion. Moving O up by one height makes
obsolete exactly the older rows of the keys written *at* O, so each commit reads the rows of the height that leaves
the window (through an index by height) and deletes what they supersede, inside the commit's transaction: the
work per block is that of the block that wrote them, whatever the length of the chain. A store that has to catch
up (pruning switched on, or ``keep_recent`` lowered) does so ``PRUNE_ROWS_PER_COMMIT`` rows per commit.
Pruning touches only ``history``; the app hash is the digest of ``state`` and does not move.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from gridmint.chain import lthash
from gridmint.chain.errors import HEIGHT_UNAVAILABLE

Changes = Mapping[bytes, bytes | None]  # key -> new value, None to delete
Diff = list[tuple[bytes, bytes | None, bytes | None]]  # (key, committed value, new value) where they differ

# What a node keeps unless told otherwise (`--keep-recent`): about 2.8 hours of the devnode's 1 s blocks, 50 minutes
# of `gridmint net`'s. Clients read at heights they have just seen and the explorer charts a subnet's recent past;
# nothing off chain needs older answers, which are an archive node's job (keep_recent = 0). Between Substrate's
# default (256 blocks) and the Cosmos SDK's (362,880); at the busy 1,024-UID subnet of bench/state_growth.py
# (~42 kB of changed values per block) it bounds history to ~0.4 GB per such subnet.
DEFAULT_KEEP_RECENT = 10_000
# Rows of history a commit examines at most while catching up (steady state is one height per commit).
PRUNE_ROWS_PER_COMMIT = 4_096
# The WAL is truncated back to this after a checkpoint, so one huge block does not leave a huge file behind.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    key BLOB NOT NULL, height INTEGER NOT NULL, value BLOB, PRIMARY KEY (key, height)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
# Only a pruning store needs history by height; an archive node saves the bytes (created when pruning starts).
_HEIGHT_INDEX = "CREATE INDEX IF NOT EXISTS history_by_height ON history (height)"


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no upper bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class Store:
    """The committed state. Reads see only committed data; ``commit`` is the only writer.

    ``keep_recent``: how many of the latest heights queries can read (0: all of them, an archive node). A
    node-local setting: it changes what this node can answer about the past, never the state or the app hash."""

    def __init__(self, path: Path | str, keep_recent: int = 0) -> None:
        if keep_recent < 0:
            raise ValueError(f"keep_recent must be 0 (keep every height) or a number of heights, got {keep_recent}")
        self.path = str(path)
        self.keep_recent = keep_recent
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        self._db.executescript(_SCHEMA)
        if keep_recent:
            self._db.execute(_HEIGHT_INDEX)
        self.height = int.from_bytes(self._meta("height") or b"", "big")
        self.pruned_through = int.from_bytes(self._meta("pruned_through") or b"", "big")
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

    @property
    def earliest_height(self) -> int:
        """The oldest height queries can read (1 until something was pruned)."""
        return max(1, self.pruned_through)

    def bytes_in_use(self) -> int:
        """Bytes of the database's pages that hold data (free pages, which SQLite reuses, excluded; the WAL's
        committed pages included): what the store occupies, without a checkpoint or a VACUUM."""
        return (self._pragma("page_count") - self._pragma("freelist_count")) * self._pragma("page_size")

    def _pragma(self, name: str) -> int:
        return int(self._db.execute(f"PRAGMA {name}").fetchone()[0])

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

    def scan(self, prefix: bytes, height: int | None = None, below: bytes | None = None, limit: int | None = None
             ) -> Iterator[tuple[bytes, bytes]]:
        """Committed ``(key, value)`` pairs under ``prefix`` (and before ``below``) in key order, latest or at
        ``height``, the first ``limit`` of them when given. A bounded range reads only what it returns: queues
        ordered by block stay cheap, and a queue worked through a batch a block reads one batch."""
        end = prefix_end(prefix)
        if below is not None and (end is None or below < end):
            end = below
        upper = "AND key < ?" if end is not None else ""
        args: tuple[object, ...] = (prefix, end) if end is not None else (prefix,)
        if height is None:
            if limit is not None:
                yield from ((bytes(k), bytes(v)) for k, v in self._db.execute(
                    f"SELECT key, value FROM state WHERE key >= ? {upper} ORDER BY key LIMIT ?",  # noqa: S608
                    (*args, limit)).fetchall())
                return
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
        found = ((bytes(key), bytes(value)) for key, value in rows.fetchall() if value is not None)
        yield from (found if limit is None else itertools.islice(found, limit))

    def all_pairs(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.execute("SELECT key, value FROM state ORDER BY key"):
            yield bytes(key), bytes(value)

    def _check_height(self, height: int) -> None:
        if not 0 < height <= self.height:
            raise HEIGHT_UNAVAILABLE(f"height {height} is not committed; the latest committed height is {self.height}")
        earliest = self.earliest_height
        if height < earliest:
            kept = (f"this node keeps the last {self.keep_recent} heights" if self.keep_recent
                    else "this node pruned its history before it was set to keep every height")
            raise HEIGHT_UNAVAILABLE(f"height {height} was pruned; {kept}, the oldest available is {earliest}")

    # --- hashing and commit ----------------------------------------------------------------------------

    def diff(self, changes: Changes) -> Diff:
        """``(key, committed value, new value)`` for the keys whose value ``changes`` really changes, by key: what
        both the digest and the commit of a block need, read once."""
        changed = []
        for key in sorted(changes):
            old, new = self.get(key), changes[key]
            if old != new:
                changed.append((key, old, new))
        return changed

    def digest_with(self, changes: Changes, diff: Diff | None = None) -> lthash.Lanes:
        """The LtHash of the committed state with ``changes`` applied (nothing is written); ``diff``: their
        ``diff``, when the caller already has it."""
        changed = self.diff(changes) if diff is None else diff
        added = [(key, new) for key, _, new in changed if new is not None]
        removed = [(key, old) for key, old, _ in changed if old is not None]
        return lthash.combine(self.lanes, added, removed)

    def commit(self, height: int, changes: Changes, lanes: lthash.Lanes, diff: Diff | None = None) -> bytes:
        """Write one block's changes and its digest atomically (prune history past ``keep_recent`` in the same
        transaction); returns the new app hash. Keys written with the value they already had are left alone.
        ``diff``: the changes' ``diff`` against this committed state, when the caller already read it.

        The first commit may be at any height: a chain started from an exported genesis begins at the height after
        the export. Its history starts there, so queries at earlier heights are refused as not kept."""
        starts_late = self.height == 0 and height > 1
        if height != self.height + 1 and not starts_late:
            raise ValueError(f"commit of height {height} after height {self.height}")
        app_hash = lthash.checksum(lanes)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            changed = self.diff(changes) if diff is None else diff
            db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                           [(key, new) for key, _, new in changed if new is not None])
            db.executemany("DELETE FROM state WHERE key = ?", [(key,) for key, _, new in changed if new is None])
            db.executemany("INSERT OR REPLACE INTO history (key, height, value) VALUES (?, ?, ?)",
                           [(key, height, new) for key, _, new in changed])
            pruned_through = height if starts_late else self._prune(height)
            db.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                [("height", height.to_bytes(8, "big")), ("lthash", lanes.astype("<u2").tobytes()),
                 ("app_hash", app_hash), ("pruned_through", pruned_through.to_bytes(8, "big"))],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.height = height
        self.pruned_through = pruned_through
        self.lanes = lanes.copy()
        self.app_hash = app_hash
        return app_hash

    def _prune(self, height: int) -> int:
        """Delete the history rows that no height from ``height - keep_recent + 1`` on needs, a bounded batch of
        heights at a time (inside the commit's transaction); returns the new ``pruned_through``."""
        done = self.pruned_through
        target = height - self.keep_recent + 1  # the oldest height to keep answering
        if not self.keep_recent or done >= target:
            return done
        rows = self._db.execute(
            "SELECT height, key, value IS NULL FROM history WHERE height > ? AND height <= ? "
            "ORDER BY height, key LIMIT ?", (done, target, PRUNE_ROWS_PER_COMMIT)).fetchall()
        if len(rows) < PRUNE_ROWS_PER_COMMIT:
            through = target  # every row up to the target is in hand
        elif rows[0][0] < rows[-1][0]:  # whole heights only: leave the last one fetched for the next commit
            through = rows[-1][0] - 1
            rows = [row for row in rows if row[0] <= through]
        else:  # one height wrote more rows than the budget: it is pruned whole (its block wrote them all at once)
            through = rows[0][0]
            rows = self._db.execute("SELECT height, key, value IS NULL FROM history WHERE height = ? ORDER BY key",
                                    (through,)).fetchall()
        # In height order: each row makes the older rows of its key obsolete, and itself too if it is a deletion.
        self._db.executemany(
            "DELETE FROM history WHERE key = ? AND height <= ? AND (height < ? OR ?)",
            [(key, at, at, deleted) for at, key, deleted in rows])
        return through

    def restore(self, height: int, pairs: Iterable[tuple[bytes, bytes]], lanes: lthash.Lanes) -> bytes:
        """Fill an empty store with the whole state of ``height`` (state sync), in one transaction; returns its app
        hash. ``pairs`` in strictly increasing key order and ``lanes`` their digest, both checked by the caller
        against the app hash it trusts. History starts at ``height``: older heights were never here."""
        if self.height != 0 or self._db.execute("SELECT 1 FROM state LIMIT 1").fetchone() is not None:
            raise ValueError(f"restore into a store that already holds height {self.height}")
        if height < 1:
            raise ValueError(f"restore at height {height}: heights start at 1")
        app_hash = lthash.checksum(lanes)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO state (key, value) VALUES (?, ?)", pairs)
            db.execute("INSERT INTO history (key, height, value) SELECT key, ?, value FROM state", (height,))
            db.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                [("height", height.to_bytes(8, "big")), ("lthash", lanes.astype("<u2").tobytes()),
                 ("app_hash", app_hash), ("pruned_through", height.to_bytes(8, "big"))],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.height = height
        self.pruned_through = height
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
            self.pruned_through = int.from_bytes(self._meta("pruned_through") or b"", "big")
            yield self
        finally:
            self._db.execute("COMMIT")
