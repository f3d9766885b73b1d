"""Metered usage that is owed to miners until it is settled on chain, kept in SQLite so a restart loses none.

Each paid request is one row ``(consumer, miner hotkey, grains)``. Rows recorded in one turn of the event loop
are committed together at the end of that turn, before the answers of that turn leave (their writes are queued
after the commit), so an answer is never out while its usage is not on disk; WAL with ``synchronous=NORMAL``: a
crashed process loses nothing it answered, only a power cut could lose the last commits. A settlement batch takes
unbatched rows, oldest first and per consumer only as far as its credit line holds, sums them per (consumer,
miner) into at most ``MAX_ENTRIES`` entries, and marks the rows with the batch id; the chain confirms (the batch
is done) or refuses (the rows are freed for the next batch). After a crash between sending a batch and hearing
back, the gateway's ``last_batch`` on chain says which way it went.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from gridmint.chain.credit import MAX_ENTRIES, compute_fee
from gridmint.chain.crypto import parse_address

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY, consumer TEXT NOT NULL, miner TEXT NOT NULL,
                                  grains INTEGER NOT NULL, batch INTEGER);
CREATE INDEX IF NOT EXISTS usage_batch ON usage (batch);
CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY, state TEXT NOT NULL);
"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


@dataclass(frozen=True)
class Batch:
    id: int
    entries: list[list[object]]  # [consumer 20B, miner 20B, grains, requests], as MsgSettle takes them
    grains: int
    fee: int
    charges: dict[str, int]  # consumer (gm1...) -> what the chain takes from its line: grains and fee per entry


class Ledger:
    def __init__(self, db: sqlite3.Connection, fee_bps: int) -> None:
        self.db = db
        self.fee_bps = fee_bps
        db.executescript(SCHEMA)
        self._owed: dict[str, int] = defaultdict(int)  # consumer -> grains + fees not yet settled
        self._unwritten: list[tuple[str, str, int]] = []
        for consumer, grains in db.execute("SELECT consumer, grains FROM usage WHERE batch IS NULL OR batch IN "
                                           "(SELECT id FROM batches WHERE state = 'pending')"):
            self._owed[consumer] += grains + compute_fee(grains, fee_bps)

    def record(self, consumer: str, miner: str, grains: int) -> None:
        """Owe ``grains`` to ``miner``; written at the end of this event-loop turn (at once outside a loop)."""
        if grains <= 0:
            return
        self._owed[consumer] += grains + compute_fee(grains, self.fee_bps)
        self._unwritten.append((consumer, miner, grains))
        if len(self._unwritten) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        if self._unwritten:
            rows, self._unwritten = self._unwritten, []
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO usage (consumer, miner, grains) VALUES (?, ?, ?)", rows)
            self.db.execute("COMMIT")

    def owed(self, consumer: str) -> int:
        """What the consumer's line will be charged for usage not settled yet (fees included)."""
        return self._owed.get(consumer, 0)

    def unsettled(self) -> int:
        self.flush()
        return int(self.db.execute("SELECT COALESCE(SUM(grains), 0) FROM usage WHERE batch IS NULL").fetchone()[0])

    def pending_batch(self) -> int | None:
        row = self.db.execute("SELECT id FROM batches WHERE state = 'pending'").fetchone()
        return None if row is None else int(row[0])

    def next_batch(self, after: int, limits: Mapping[str, int] | None = None) -> Batch | None:
        """The batch to send: the pending one again if its fate is unknown, else unbatched usage gathered into a
        new batch numbered past ``after`` (the chain's last) and past any local one; None if nothing is owed.

        ``limits``: what each consumer's credit line holds now. The chain refuses a whole batch if one consumer's
        entries (with the fee) come to more than its line, which would hold back every miner's pay; so a
        consumer's usage goes in, oldest first, only as far as its line reaches, and the rest stays owed until the
        line is topped up. At most ``MAX_ENTRIES`` (consumer, miner) entries, oldest usage first."""
        self.flush()
        pending = self.pending_batch()
        if pending is not None:
            return self._batch(pending)
        charged: dict[str, int] = defaultdict(int)  # consumer -> what the chain will take from its line
        picked: list[tuple[str, str, int]] = []  # (consumer, miner, last usage row id in the batch)
        for consumer, miner, grains, last_id in self.db.execute(
                "SELECT consumer, miner, SUM(grains), MAX(id) FROM usage WHERE batch IS NULL GROUP BY consumer, miner "
                "ORDER BY MIN(id)").fetchall():
            if len(picked) == MAX_ENTRIES:
                break
            room = None if limits is None else limits.get(consumer, 0) - charged[consumer]
            if room is not None and int(grains) + compute_fee(int(grains), self.fee_bps) > room:
                grains, last_id = self._oldest_within(consumer, miner, room)
                if not grains:
                    continue
            charged[consumer] += int(grains) + compute_fee(int(grains), self.fee_bps)
            picked.append((consumer, miner, int(last_id)))
        if not picked:
            return None
        last_local = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM batches").fetchone()[0]
        batch_id = max(after, int(last_local)) + 1
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO batches VALUES (?, 'pending')", (batch_id,))
        for consumer, miner, last_id in picked:
            self.db.execute("UPDATE usage SET batch = ? WHERE batch IS NULL AND consumer = ? AND miner = ? "
                            "AND id <= ?", (batch_id, consumer, miner, last_id))
        self.db.execute("COMMIT")
        return self._batch(batch_id)

    def _oldest_within(self, consumer: str, miner: str, room: int) -> tuple[int, int]:
        """(grains, last row id) of the oldest unbatched usage of (consumer, miner) whose sum, with the fee, fits
        in ``room``; (0, 0) if not even the oldest request does."""
        total = last_id = 0
        for row_id, grains in self.db.execute("SELECT id, grains FROM usage WHERE batch IS NULL AND consumer = ? "
                                              "AND miner = ? ORDER BY id", (consumer, miner)):
            if total + grains + compute_fee(total + grains, self.fee_bps) > room:
                break
            total, last_id = total + int(grains), int(row_id)
        return total, last_id

    def unbatched_consumers(self) -> list[str]:
        """The consumers with usage in no batch yet."""
        self.flush()
        return [row[0] for row in self.db.execute("SELECT DISTINCT consumer FROM usage WHERE batch IS NULL "
                                                  "ORDER BY consumer")]

    def _batch(self, batch_id: int) -> Batch:
        groups = self.db.execute("SELECT consumer, miner, SUM(grains), COUNT(*) FROM usage WHERE batch = ? "
                                 "GROUP BY consumer, miner ORDER BY consumer, miner", (batch_id,)).fetchall()
        entries = [[parse_address(c), parse_address(m), int(g), int(n)] for c, m, g, n in groups]
        grains = sum(int(g) for _, _, g, _ in groups)
        fee = sum(compute_fee(int(g), self.fee_bps) for _, _, g, _ in groups)
        charges: dict[str, int] = defaultdict(int)
        for consumer, _, entry_grains, _ in groups:
            charges[consumer] += int(entry_grains) + compute_fee(int(entry_grains), self.fee_bps)
        return Batch(batch_id, entries, grains, fee, dict(charges))

    def confirm(self, batch_id: int) -> None:
        """The chain settled the batch: what it covered is no longer owed."""
        rows = self.db.execute("SELECT consumer, grains FROM usage WHERE batch = ?", (batch_id,)).fetchall()
        self.db.execute("UPDATE batches SET state = 'settled' WHERE id = ?", (batch_id,))
        for consumer, grains in rows:
            self._owed[consumer] -= grains + compute_fee(grains, self.fee_bps)

    def release(self, batch_id: int) -> None:
        """The chain executed and refused the batch (so it can never land): its rows go into the next one."""
        self.db.execute("BEGIN")
        self.db.execute("UPDATE usage SET batch = NULL WHERE batch = ?", (batch_id,))
        self.db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self.db.execute("COMMIT")

    def recover(self, last_on_chain: int) -> None:
        """A pending batch the chain has seen is settled. One it has not seen stays pending, to be sent again as
        it is: its transaction may still land, and the same batch twice is refused by the chain, never paid twice."""
        pending = self.pending_batch()
        if pending is not None and pending <= last_on_chain:
            self.confirm(pending)
