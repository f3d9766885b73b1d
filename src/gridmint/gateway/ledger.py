"""Metered usage owed to miners until it is settled on chain, the batches that settle it, and the cumulative
receipts the miners signed; SQLite, so a restart loses none of it.

**Rows.** Each paid answer is one row: its request id, the consumer, the credit line's id (usage is owed on the
line it was served on: a line reclaimed and opened again is a new line), the miner's hotkey, tokens, grains and the
line's fee. Rows recorded in one turn of the event loop are committed together at the end of that turn, before
the answers of that turn leave (their writes are queued after the commit): a crashed process loses nothing it
answered. WAL with ``synchronous=NORMAL``: only a power cut could lose the last commits.

**No overflow.** A row's tokens and grains are bounded (``MAX_ROW``, far above what admission lets one answer
cost) and refused beyond it before SQLite sees them; sums are done in Python, never with SQL's ``SUM`` (which
raises on 64-bit overflow), and cumulative receipts are stored as decimal text.

**Batches.** A batch is planned from unbatched rows grouped per (line, miner), signed by the miners, then written
in one transaction with its signed entries, exactly as ``credit/settle`` takes them: after a crash or an unknown
outcome the very same batch is sent again (the chain refuses a batch id twice, so it is never paid twice). The
chain confirms (the entries' receipts become the ones held per (line, miner), the base of the next) or refuses it
(its rows are freed for the next batch). Every ``BEGIN`` rolls back on any error.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from gridmint.chain.credit import MAX_FEE_BPS
from gridmint.chain.crypto import parse_address

CLAIMED_BATCH = 0  # the batch id of rows a miner's own claim paid (batch ids on chain start at 1)
MAX_ROW = 2**62  # the most tokens or grains one row may hold: SQLite's integers are signed 64-bit

SCHEMA = """
CREATE TABLE IF NOT EXISTS metered (id INTEGER PRIMARY KEY, request TEXT NOT NULL, consumer TEXT NOT NULL,
                                    line INTEGER NOT NULL, miner TEXT NOT NULL, tokens INTEGER NOT NULL,
                                    grains INTEGER NOT NULL, fee_bps INTEGER NOT NULL, batch INTEGER);
CREATE INDEX IF NOT EXISTS metered_batch ON metered (batch);
CREATE INDEX IF NOT EXISTS metered_consumer ON metered (consumer);
CREATE TABLE IF NOT EXISTS settle_batches (id INTEGER PRIMARY KEY, state TEXT NOT NULL, entries BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS held_receipts (line INTEGER NOT NULL, miner TEXT NOT NULL, consumer TEXT NOT NULL,
                                          tokens TEXT NOT NULL, grains TEXT NOT NULL, requests TEXT NOT NULL,
                                          miner_key TEXT NOT NULL, signature TEXT NOT NULL, batch INTEGER NOT NULL,
                                          PRIMARY KEY (line, miner));
"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN … COMMIT, rolled back on any error so the connection never stays inside an open transaction."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def charge(grains: int, fee_bps: int) -> int:
    """What one row may cost its line, fee included, rounded up: the chain's fee on an entry is rounded down on
    the entry's sum, so the rows' charges never add up to less than the chain takes."""
    return grains + -(-grains * fee_bps // MAX_FEE_BPS)


@dataclass(frozen=True)
class Usage:
    request: str
    consumer: str  # gm1...
    line: int  # the credit line's id
    miner: str  # the miner's hotkey, gm1...
    tokens: int
    grains: int
    fee_bps: int  # the line's fee


@dataclass(frozen=True)
class Cumulative:
    """A (line, miner)'s cumulative counts, as a receipt states them."""

    tokens: int = 0
    grains: int = 0
    requests: int = 0

    def plus(self, tokens: int, grains: int, requests: int) -> Cumulative:
        return Cumulative(self.tokens + tokens, self.grains + grains, self.requests + requests)


@dataclass
class Group:
    """Unbatched usage of one (consumer, line, miner), oldest row first."""

    consumer: str
    line: int
    miner: str
    fee_bps: int
    rows: list[tuple[int, int, int]] = field(default_factory=list)  # (row id, tokens, grains)

    def upto(self, last_id: int) -> tuple[int, int, int]:
        """(tokens, grains, requests) of the rows up to ``last_id``."""
        taken = [(tokens, grains) for row_id, tokens, grains in self.rows if row_id <= last_id]
        return sum(t for t, _ in taken), sum(g for _, g in taken), len(taken)


@dataclass(frozen=True)
class Entry:
    """One settlement entry: a miner's signed cumulative receipt for (line, miner), and the rows it covers."""

    consumer: str
    line: int
    miner: str
    miner_key: bytes
    tokens: int
    grains: int
    requests: int
    signature: bytes
    delta: int  # grains over the receipt held before: what the chain pays the miner
    fee: int  # the gateway's fee on the delta at the line's fee, as the chain computes it
    last_row: int  # the newest row it covers (with every older unbatched row of its (consumer, line, miner))

    def as_settled(self) -> list[Any]:
        """The entry as ``credit.MsgSettle`` takes it."""
        return [parse_address(self.consumer), self.miner_key, self.tokens, self.grains, self.requests,
                self.signature]

    def to_json(self) -> dict[str, Any]:
        return {"consumer": self.consumer, "line": self.line, "miner": self.miner, "miner_key": self.miner_key.hex(),
                "tokens": str(self.tokens), "grains": str(self.grains), "requests": str(self.requests),
                "signature": self.signature.hex(), "delta": str(self.delta), "fee": str(self.fee),
                "last_row": self.last_row}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Entry:
        return cls(raw["consumer"], int(raw["line"]), raw["miner"], bytes.fromhex(raw["miner_key"]),
                   int(raw["tokens"]), int(raw["grains"]), int(raw["requests"]), bytes.fromhex(raw["signature"]),
                   int(raw["delta"]), int(raw["fee"]), int(raw["last_row"]))


@dataclass(frozen=True)
class Batch:
    id: int
    entries: list[Entry]

    @property
    def settled(self) -> list[list[Any]]:
        return [entry.as_settled() for entry in self.entries]

    @property
    def grains(self) -> int:
        return sum(entry.delta for entry in self.entries)

    @property
    def fee(self) -> int:
        return sum(entry.fee for entry in self.entries)

    @property
    def charges(self) -> dict[str, int]:
        """consumer (gm1...) -> what the chain takes from its line: each entry's delta and fee."""
        found: dict[str, int] = defaultdict(int)
        for entry in self.entries:
            found[entry.consumer] += entry.delta + entry.fee
        return dict(found)


class Ledger:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(SCHEMA)
        self._owed: dict[str, int] = defaultdict(int)  # consumer -> grains + fees not yet settled
        self._unwritten: list[tuple[object, ...]] = []
        for consumer, grains, fee_bps in db.execute(
                "SELECT consumer, grains, fee_bps FROM metered WHERE batch IS NULL OR batch IN "
                "(SELECT id FROM settle_batches WHERE state = 'pending')"):
            self._owed[consumer] += charge(grains, fee_bps)

    # --- metering ---------------------------------------------------------------------------------------------

    def record(self, usage: Usage) -> None:
        """Owe ``usage.grains`` to the miner; written at the end of this event-loop turn (at once outside a loop).
        Refused (ValueError, nothing recorded) beyond ``MAX_ROW`` or below zero."""
        if not (0 <= usage.tokens <= MAX_ROW and 0 <= usage.grains <= MAX_ROW and 0 <= usage.fee_bps <= MAX_FEE_BPS):
            raise ValueError(f"usage out of bounds (tokens {usage.tokens}, grains {usage.grains}, fee "
                             f"{usage.fee_bps} bps): expected 0..{MAX_ROW}")
        if usage.grains == 0:
            return  # nothing owed: a receipt must add grains, so a free answer is never settled
        self._owed[usage.consumer] += charge(usage.grains, usage.fee_bps)
        self._unwritten.append((usage.request, usage.consumer, usage.line, usage.miner, usage.tokens, usage.grains,
                                usage.fee_bps))
        if len(self._unwritten) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        if self._unwritten:
            rows, self._unwritten = self._unwritten, []
            try:
                with transaction(self.db):
                    self.db.executemany("INSERT INTO metered (request, consumer, line, miner, tokens, grains, "
                                        "fee_bps) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._unwritten = rows + self._unwritten  # kept for the next flush, not lost
                raise

    def owed(self, consumer: str) -> int:
        """What the consumer's line will be charged for usage not settled yet (fees included, rounded up)."""
        return self._owed.get(consumer, 0)

    def unsettled(self) -> int:
        self.flush()
        return sum(int(g) for (g,) in self.db.execute("SELECT grains FROM metered WHERE batch IS NULL"))

    # --- planning a batch -------------------------------------------------------------------------------------

    def unbatched(self) -> list[Group]:
        """Unbatched usage per (consumer, line, miner), the group with the oldest row first."""
        self.flush()
        groups: dict[tuple[str, int, str], Group] = {}
        for row_id, consumer, line, miner, tokens, grains, fee_bps in self.db.execute(
                "SELECT id, consumer, line, miner, tokens, grains, fee_bps FROM metered WHERE batch IS NULL "
                "ORDER BY id"):
            group = groups.get((consumer, line, miner))
            if group is None:
                group = groups[(consumer, line, miner)] = Group(consumer, int(line), miner, int(fee_bps))
            group.rows.append((int(row_id), int(tokens), int(grains)))
        return list(groups.values())

    def held(self, line: int, miner: str) -> Cumulative:
        """The last receipt settled for (line, miner): the base the next cumulative receipt adds to."""
        row = self.db.execute("SELECT tokens, grains, requests FROM held_receipts WHERE line = ? AND miner = ?",
                              (line, miner)).fetchone()
        return Cumulative() if row is None else Cumulative(int(row[0]), int(row[1]), int(row[2]))

    def next_batch_id(self, after: int) -> int:
        last_local = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM settle_batches").fetchone()[0]
        return max(after, int(last_local)) + 1

    def open_batch(self, batch_id: int, entries: list[Entry]) -> Batch:
        """Persist a batch with its signed entries and mark the rows it covers, in one transaction."""
        with transaction(self.db):
            self.db.execute("INSERT INTO settle_batches VALUES (?, 'pending', ?)",
                            (batch_id, orjson.dumps([entry.to_json() for entry in entries])))
            for entry in entries:
                self.db.execute("UPDATE metered SET batch = ? WHERE batch IS NULL AND consumer = ? AND line = ? AND "
                                "miner = ? AND id <= ?", (batch_id, entry.consumer, entry.line, entry.miner,
                                                          entry.last_row))
        return Batch(batch_id, entries)

    def pending_batch(self) -> Batch | None:
        row = self.db.execute("SELECT id, entries FROM settle_batches WHERE state = 'pending'").fetchone()
        if row is None:
            return None
        return Batch(int(row[0]), [Entry.from_json(raw) for raw in orjson.loads(row[1])])

    # --- the chain's answer -----------------------------------------------------------------------------------

    def confirm(self, batch_id: int) -> None:
        """The chain settled the batch: its receipts become the ones held, what it covered is no longer owed."""
        row = self.db.execute("SELECT entries FROM settle_batches WHERE id = ?", (batch_id,)).fetchone()
        entries = [Entry.from_json(raw) for raw in orjson.loads(row[0])] if row else []
        rows = self.db.execute("SELECT consumer, grains, fee_bps FROM metered WHERE batch = ?",
                               (batch_id,)).fetchall()
        with transaction(self.db):
            self.db.execute("UPDATE settle_batches SET state = 'settled' WHERE id = ?", (batch_id,))
            for entry in entries:
                self.db.execute("INSERT OR REPLACE INTO held_receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (entry.line, entry.miner, entry.consumer, str(entry.tokens), str(entry.grains),
                                 str(entry.requests), entry.miner_key.hex(), entry.signature.hex(), batch_id))
        for consumer, grains, fee_bps in rows:
            self._owed[consumer] -= charge(grains, fee_bps)

    def paid_by_claim(self, entries: list[Entry]) -> dict[str, int]:
        """The chain has already paid these receipts (each miner claimed one the gateway acknowledged): the rows
        they cover are settled under batch 0 (a claim's, never sent as a batch) and the receipts become the ones
        held, so the next receipt adds to them. Returns consumer -> what those rows had been owing (fees included,
        as ``owed`` counts them)."""
        charges: dict[str, int] = defaultdict(int)
        rows = []
        for entry in entries:
            rows += self.db.execute("SELECT consumer, grains, fee_bps FROM metered WHERE batch IS NULL AND "
                                    "consumer = ? AND line = ? AND miner = ? AND id <= ?",
                                    (entry.consumer, entry.line, entry.miner, entry.last_row)).fetchall()
        with transaction(self.db):
            self.db.execute("INSERT OR IGNORE INTO settle_batches VALUES (?, 'settled', '[]')", (CLAIMED_BATCH,))
            for entry in entries:
                self.db.execute("UPDATE metered SET batch = ? WHERE batch IS NULL AND consumer = ? AND line = ? AND "
                                "miner = ? AND id <= ?", (CLAIMED_BATCH, entry.consumer, entry.line, entry.miner,
                                                          entry.last_row))
                self.db.execute("INSERT OR REPLACE INTO held_receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (entry.line, entry.miner, entry.consumer, str(entry.tokens), str(entry.grains),
                                 str(entry.requests), entry.miner_key.hex(), entry.signature.hex(), CLAIMED_BATCH))
        for consumer, grains, fee_bps in rows:
            self._owed[consumer] -= charge(grains, fee_bps)
            charges[consumer] += charge(grains, fee_bps)
        return dict(charges)

    def release(self, batch_id: int) -> None:
        """The chain executed and refused the batch (so it can never land): its rows go into the next one."""
        with transaction(self.db):
            self.db.execute("UPDATE metered SET batch = NULL WHERE batch = ?", (batch_id,))
            self.db.execute("DELETE FROM settle_batches WHERE id = ?", (batch_id,))

    def recover(self, last_on_chain: int) -> None:
        """A pending batch the chain has seen is settled. One it has not seen stays pending, to be sent again as
        it is: its transaction may still land, and the same batch twice is refused by the chain, never paid twice."""
        pending = self.pending_batch()
        if pending is not None and pending.id <= last_on_chain:
            self.confirm(pending.id)

    # --- what a consumer may see ------------------------------------------------------------------------------

    def usage_of(self, consumer: str, line: int | None = None, after: int = 0, limit: int = 1_000
                 ) -> list[dict[str, Any]]:
        """The consumer's rows after row ``after`` (on ``line`` if given), oldest first, at most ``limit``, with the
        state of the batch each is in: a page; the next one starts after the last row's ``id``."""
        self.flush()
        rows = self.db.execute(
            "SELECT m.id, m.request, m.line, m.miner, m.tokens, m.grains, m.batch, b.state FROM metered m "
            "LEFT JOIN settle_batches b ON b.id = m.batch WHERE m.consumer = ? AND (? IS NULL OR m.line = ?) "
            "AND m.id > ? ORDER BY m.id LIMIT ?", (consumer, line, line, after, limit)).fetchall()
        return [{"id": row_id, "request": request, "line": line, "miner": miner, "tokens": tokens, "grains": grains,
                 "batch": batch, "state": state or "unsettled"}
                for row_id, request, line, miner, tokens, grains, batch, state in rows]

    def receipts_of(self, consumer: str) -> list[dict[str, Any]]:
        """The settled cumulative receipts the gateway holds for the consumer's lines, with the miners' signatures."""
        return [{"line": line, "miner": miner, "miner_key": miner_key, "tokens": int(tokens), "grains": int(grains),
                 "requests": int(requests), "signature": signature, "batch": batch}
                for line, miner, tokens, grains, requests, miner_key, signature, batch in self.db.execute(
                    "SELECT line, miner, tokens, grains, requests, miner_key, signature, batch FROM held_receipts "
                    "WHERE consumer = ? ORDER BY line, miner", (consumer,))]

