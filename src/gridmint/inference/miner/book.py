"""The miner's book: what it served each gateway, and the receipts it signed for that, in SQLite so a restart
keeps both.

**Counting.** Per gateway (the signed caller's address): tokens (the backend's own prompt + completion counts),
requests, and grains at the miner's own announced price (rounded up per request, as gateways meter), the last
only to weigh the gateway's exposure. Counts live in memory and the gateways counted in one event-loop turn are
written together at the end of that turn, before the answers of that turn leave (their writes are queued after
the commit, as in ``gateway.ledger``): one small transaction per turn however many answers it holds (usually a
single UPDATE in place, about 10 µs), and a crashed process loses no count of an answer it sent (WAL with
``synchronous=NORMAL``: only a power cut could lose the last turns). Counts kept in memory and written on a timer
would be cheaper still, but a lost count is worse than a lost answer: the gateway's receipt that covers it could
never be signed, and that line would stay unsettled with this miner for good.

**Signing.** A gateway asks for cumulative receipts (``chain.receipts``), one per credit line, acknowledged with
its account key. The miner signs one when it covers a request at least (so the rows kept are bounded by the
requests served), the acknowledgement verifies, the receipt is at or above the last it signed for that line in
every count, the line's consumer is the one it signed for before, and the increments over those last receipts,
summed over the call, fit in what it served that gateway and has not signed for yet (tokens and requests; grains
are the gateway's price, which the chain bounds by the line's maximum, and they lower the gateway's exposure by
no more than the share of the unsigned grains their tokens are). It keeps the latest signed receipt per line with
the gateway's acknowledgement, which is what ``gridmint miner claim`` sends. A
batch is written in one transaction before the answer leaves.

Numbers are stored as decimal text: receipts carry u64 counts and grains up to ``MAX_AMOUNT``, beyond SQLite's
64-bit integers, and the book does no arithmetic in SQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gridmint.chain.crypto import PrivateKey, format_address, parse_address
from gridmint.chain.receipts import Receipt, sign_receipt

SCHEMA = """
CREATE TABLE IF NOT EXISTS served (chain_id TEXT NOT NULL, gateway TEXT NOT NULL, tokens TEXT NOT NULL,
                                   requests TEXT NOT NULL, grains TEXT NOT NULL, signed_tokens TEXT NOT NULL,
                                   signed_requests TEXT NOT NULL, signed_grains TEXT NOT NULL,
                                   PRIMARY KEY (chain_id, gateway));
CREATE TABLE IF NOT EXISTS receipts (chain_id TEXT NOT NULL, gateway TEXT NOT NULL, line TEXT NOT NULL,
                                     consumer TEXT NOT NULL, tokens TEXT NOT NULL, grains TEXT NOT NULL,
                                     requests TEXT NOT NULL, gateway_key BLOB NOT NULL, ack BLOB NOT NULL,
                                     signature BLOB NOT NULL, signed_at REAL NOT NULL, done INTEGER NOT NULL,
                                     PRIMARY KEY (chain_id, gateway, line));
"""

UPDATE_SERVED = "UPDATE served SET tokens = ?, requests = ?, grains = ? WHERE chain_id = ? AND gateway = ?"

# Why a receipt was not signed (the ``error`` of its place in the answer).
BAD_ACK = "bad_ack"  # the gateway's acknowledgement does not verify for these fields
BELOW_LAST = "below_last"  # some count is below the last receipt signed for this line
CONSUMER_CHANGED = "consumer_changed"  # the line was signed for another consumer
BEYOND_SERVED = "beyond_served"  # the increments exceed what was served and not signed for yet
BELOW_PRICE = "below_price"  # the grains it adds pay less per token than the miner accepts
EMPTY = "empty"  # a receipt of no request: never payable, and each for a new line would be a row kept for good


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def cost(tokens: int, price_per_1k: int) -> int:
    """Grains for ``tokens`` at ``price_per_1k``, rounded up: what a gateway meters for one answer."""
    return (tokens * price_per_1k + 999) // 1000


@dataclass
class Served:
    """What the miner served one gateway, and how much of it receipts it signed cover (cumulative)."""

    tokens: int = 0
    requests: int = 0
    grains: int = 0
    signed_tokens: int = 0
    signed_requests: int = 0
    signed_grains: int = 0

    def row(self) -> tuple[str, ...]:
        return tuple(str(value) for value in (self.tokens, self.requests, self.grains, self.signed_tokens,
                                              self.signed_requests, self.signed_grains))


@dataclass(frozen=True)
class SignedReceipt:
    receipt: Receipt
    gateway_key: bytes  # the gateway's account public key (its acknowledgement verifies under it)
    ack: bytes
    signature: bytes


@dataclass(frozen=True)
class Asked:
    """A receipt a gateway asks the miner to sign, with its acknowledgement and whether that verified."""

    receipt: Receipt
    ack: bytes
    acknowledged: bool


@dataclass(frozen=True)
class Outcome:
    signature: bytes | None
    error: str | None


class ReceiptBook:
    def __init__(self, db: sqlite3.Connection, chain_id: str, miner: bytes) -> None:
        self.db = db
        self.chain_id = chain_id
        self.miner = miner  # the miner's hotkey address, which every receipt it signs names
        db.executescript(SCHEMA)
        self._served: dict[str, Served] = {}
        self._dirty: dict[str, None] = {}  # gateways counted since the last write, in order
        self._on_disk: set[str] = set()  # gateways with a row (counts then change by UPDATE, cheaper than a REPLACE)
        for gateway, *values in db.execute("SELECT gateway, tokens, requests, grains, signed_tokens, signed_requests, "
                                           "signed_grains FROM served WHERE chain_id = ?", (chain_id,)):
            self._served[gateway] = Served(*(int(value) for value in values))
            self._on_disk.add(gateway)

    @classmethod
    def in_memory(cls, chain_id: str, miner: bytes) -> ReceiptBook:
        return cls(open_db(":memory:"), chain_id, miner)

    # --- counting (the hot path) ---------------------------------------------------------------------------

    def count(self, gateway: str, tokens: int, price_per_1k: int) -> None:
        """One answer of ``tokens`` served to ``gateway``; written at the end of this event-loop turn (at once
        outside a loop)."""
        served = self._served.get(gateway)
        if served is None:
            served = self._served[gateway] = Served()
        served.tokens += tokens
        served.requests += 1
        served.grains += cost(tokens, price_per_1k)
        if not self._dirty:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self._dirty[gateway] = None
                self.flush()
                return
        self._dirty[gateway] = None

    def flush(self) -> None:
        """Write the counts changed since the last write, in one transaction."""
        if not self._dirty:
            return
        gateways, self._dirty = self._dirty, {}
        try:
            self._write_served(list(gateways))
        except BaseException:
            self._dirty = {**gateways, **self._dirty}  # written next time
            raise

    def _write_served(self, gateways: Sequence[str]) -> None:
        counts = [(*self._served[gateway].row()[:3], self.chain_id, gateway) for gateway in gateways]
        new = [gateway for gateway in gateways if gateway not in self._on_disk]
        if len(counts) == 1 and not new:  # the usual turn: one UPDATE in place, its own transaction (~10 us)
            self.db.execute(UPDATE_SERVED, counts[0])
            return
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR IGNORE INTO served VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                [(self.chain_id, gateway, *self._served[gateway].row()) for gateway in new])
            self.db.executemany(UPDATE_SERVED, counts)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._on_disk.update(new)

    def served(self, gateway: str) -> Served:
        return self._served.get(gateway) or Served()

    def exposure(self, gateway: str) -> int:
        """Grains served to ``gateway`` at the miner's price that no receipt the miner signed covers yet."""
        served = self._served.get(gateway)
        return 0 if served is None else max(0, served.grains - served.signed_grains)

    # --- receipts ------------------------------------------------------------------------------------------

    def last(self, gateway: str, line: int) -> SignedReceipt | None:
        row = self.db.execute("SELECT consumer, tokens, grains, requests, gateway_key, ack, signature FROM receipts "
                              "WHERE chain_id = ? AND gateway = ? AND line = ?",
                              (self.chain_id, gateway, str(line))).fetchone()
        return None if row is None else self._receipt(gateway, str(line), *row)

    def sign(self, key: PrivateKey, gateway: str, gateway_key: bytes, asked: Sequence[Asked],
             floor_per_1k: int = 0) -> list[Outcome]:
        """Sign what the rules allow of the receipts ``asked`` by ``gateway`` (its account key ``gateway_key``), in
        order, and store what was signed in one transaction. Each receipt names this book's chain and miner and
        ``gateway``; the caller checked that, and whether each acknowledgement verifies. ``floor_per_1k``: the
        least the grains a receipt adds may pay per 1k of the tokens it adds (a signed receipt is final, so one
        that paid a grain for everything served would be the miner's loss)."""
        served = self.served(gateway)
        room_tokens = served.tokens - served.signed_tokens
        room_requests = served.requests - served.signed_requests
        latest: dict[int, SignedReceipt | None] = {}  # line -> last signed, this call's included
        outcomes: list[Outcome] = []
        signed: list[SignedReceipt] = []
        added = Served()  # the increments signed in this call
        for item in asked:
            receipt = item.receipt
            if receipt.requests == 0:
                outcomes.append(Outcome(None, EMPTY))
                continue
            if not item.acknowledged:
                outcomes.append(Outcome(None, BAD_ACK))
                continue
            last = latest[receipt.line] if receipt.line in latest else self.last(gateway, receipt.line)
            before = last.receipt if last is not None else Receipt(self.chain_id, receipt.line, receipt.gateway,
                                                                   receipt.consumer, self.miner, 0, 0, 0)
            if before.consumer != receipt.consumer:
                outcomes.append(Outcome(None, CONSUMER_CHANGED))
                continue
            tokens, grains = receipt.tokens - before.tokens, receipt.grains - before.grains
            requests = receipt.requests - before.requests
            if tokens < 0 or requests < 0 or grains < 0:
                outcomes.append(Outcome(None, BELOW_LAST))
                continue
            if added.tokens + tokens > room_tokens or added.requests + requests > room_requests:
                outcomes.append(Outcome(None, BEYOND_SERVED))
                continue
            if grains * 1000 < tokens * floor_per_1k:
                outcomes.append(Outcome(None, BELOW_PRICE))
                continue
            added.tokens, added.requests, added.grains = added.tokens + tokens, added.requests + requests, \
                added.grains + grains
            entry = SignedReceipt(receipt, gateway_key, item.ack, sign_receipt(key, receipt))
            latest[receipt.line] = entry
            signed.append(entry)
            outcomes.append(Outcome(entry.signature, None))
        if signed:
            # What the receipts cover of the exposure: their grains are the gateway's word (the chain bounds them
            # only by the line's price, when it pays), so they count for no more than the share of the unsigned
            # grains that their tokens are of the unsigned tokens; a receipt inflating its grains would otherwise
            # cover answers not served yet and free the gateway from its bond for good.
            unsigned = max(0, served.grains - served.signed_grains)
            share = unsigned * added.tokens // room_tokens if room_tokens else unsigned
            added.grains = min(added.grains, share)
            self._store(gateway, signed, added)
        return outcomes

    def _store(self, gateway: str, signed: list[SignedReceipt], added: Served) -> None:
        served = self._served.get(gateway) or Served()
        after = Served(served.tokens, served.requests, served.grains, served.signed_tokens + added.tokens,
                       served.signed_requests + added.requests, served.signed_grains + added.grains)
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [(self.chain_id, gateway, str(s.receipt.line), format_address(s.receipt.consumer),
                  str(s.receipt.tokens), str(s.receipt.grains), str(s.receipt.requests), s.gateway_key, s.ack,
                  s.signature, time.time()) for s in signed])
            self.db.execute("INSERT OR REPLACE INTO served VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (self.chain_id, gateway, *after.row()))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._served[gateway] = after  # only once it is on disk: a failed write signs nothing
        self._on_disk.add(gateway)

    def stored(self, due_before: float | None = None) -> list[SignedReceipt]:
        """Every receipt signed on this chain (the latest per line), by gateway then line; with ``due_before`` (a
        ``time.time()``), only those signed before it that are not known to be paid or past claiming."""
        query = ("SELECT gateway, line, consumer, tokens, grains, requests, gateway_key, ack, signature FROM receipts "
                 "WHERE chain_id = ? AND (? IS NULL OR (done = 0 AND signed_at < ?))")
        rows = self.db.execute(query, (self.chain_id, due_before, due_before)).fetchall()
        return sorted((self._receipt(*row) for row in rows), key=lambda s: (s.receipt.gateway, s.receipt.line))

    def mark_done(self, receipts: list[SignedReceipt]) -> None:
        """These receipts are paid, or their line is gone: a periodic claim skips them from now on (a later receipt
        for the same line replaces the row, and is due again)."""
        rows = [(self.chain_id, format_address(s.receipt.gateway), str(s.receipt.line), str(s.receipt.grains))
                for s in receipts]
        if rows:
            self.db.execute("BEGIN")
            try:
                self.db.executemany("UPDATE receipts SET done = 1 WHERE chain_id = ? AND gateway = ? AND line = ? "
                                    "AND grains = ?", rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _receipt(self, gateway: str, line: str, consumer: str, tokens: str, grains: str, requests: str,
                 gateway_key: bytes, ack: bytes, signature: bytes) -> SignedReceipt:
        receipt = Receipt(self.chain_id, int(line), parse_address(gateway), parse_address(consumer), self.miner,
                          int(tokens), int(grains), int(requests))
        return SignedReceipt(receipt, bytes(gateway_key), bytes(ack), bytes(signature))

    def close(self) -> None:
        self.flush()
        self.db.close()

