"""The devnode's block log: headers, transactions and their results, in SQLite beside the app's state.

Headers and transactions use the canonical codec. Results are kept as the JSON ``block_results`` answers with
(``node/results_json``: the node's record of what the app answered, never hashed into consensus), encoded once
when the block is saved; each transaction's row says where its result lies in that text, so ``tx`` reads one
result without the rest. Logs written before that (``user_version`` 0, results as a JSON record) are converted
in place, in one transaction, when first opened.

A block is saved with its results *after* ``finalize_block`` and *before* the app's ``commit``. If the node dies
between the two, the block store is one block ahead of the app, and start-up replays that block (as CometBFT's
handshake does); a block that never reached the store was never reported, so nothing reported is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmint.chain import codec
from gridmint.chain.app import BlockResult, TxResult
from gridmint.chain.errors import ChainError
from gridmint.chain.module import Event, ValidatorUpdate
from gridmint.node.results_json import EncodedResults, encode_block_results

log = logging.getLogger("gridmint.blockstore")


@dataclass(frozen=True)
class Header:
    chain_id: str
    height: int
    time_ns: int
    last_block_hash: bytes
    data_hash: bytes  # SHA-256 over the transaction hashes, in order
    app_hash: bytes  # the app hash after the *previous* block, as in CometBFT
    proposer: bytes  # 20-byte address

    def hash(self) -> bytes:
        return hashlib.sha256(codec.encode(
            [1, self.chain_id, self.height, self.time_ns, self.last_block_hash, self.data_hash, self.app_hash,
             self.proposer])).digest()


@dataclass(frozen=True)
class Block:
    header: Header
    txs: list[bytes]

    @property
    def hash(self) -> bytes:
        return self.header.hash()


def data_hash(txs: list[bytes]) -> bytes:
    digest = hashlib.sha256()
    for tx in txs:
        digest.update(hashlib.sha256(tx).digest())
    return digest.digest()


RESULTS_FORMAT = 1  # the log's user_version: 1 = results as block_results' JSON, with each transaction's span

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, txs BLOB NOT NULL, results BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL,
    result_at INTEGER NOT NULL DEFAULT 0, result_len INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""


class BlockLogError(ValueError):
    """The block log cannot be read as this code writes it: a newer format, a damaged record, or rows an older
    GridMint wrote after the log was converted."""


class BlockStore:
    def __init__(self, path: Path) -> None:
        """Open (and create) the log for writing, converting one of an earlier format first."""
        self._path = str(path)
        self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            _upgrade(self._db)
        except BaseException:
            self._db.close()
            raise
        row = self._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        self.height: int = row[0] or 0

    @classmethod
    def read_only(cls, path: Path) -> BlockStore:
        """The log on a read-only connection, as it is: nothing is created or converted, so ``block`` (headers and
        transactions are alike in every format) serves any log, and ``results`` only one of ``RESULTS_FORMAT``."""
        reader = cls.__new__(cls)
        reader._path = str(path)
        reader._db = sqlite3.connect(f"file:{urllib.parse.quote(reader._path)}?mode=ro", uri=True,
                                     isolation_level=None, check_same_thread=False)
        row = reader._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        reader.height = row[0] or 0
        return reader

    def close(self) -> None:
        self._db.close()

    def open_reader(self) -> BlockStore:
        """The block log on a second, read-only connection, for reads on another thread (WAL: they do not wait
        for ``save``)."""
        return BlockStore.read_only(Path(self._path))

    def save(self, block: Block, results: EncodedResults) -> None:
        header = block.header
        if header.height != self.height + 1 and self.height != 0:
            raise ValueError(f"block {header.height} saved after block {self.height}")
        text, spans = results.block_results()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR REPLACE INTO blocks (height, hash, header, txs, results) VALUES (?, ?, ?, ?, ?)",
                (header.height, block.hash, _encode_header(header), codec.encode(block.txs), text.encode()),
            )
            db.executemany(
                "INSERT OR REPLACE INTO txs (hash, height, idx, result_at, result_len) VALUES (?, ?, ?, ?, ?)",
                [(hashlib.sha256(tx).digest(), header.height, index, at, length)
                 for index, (tx, (at, length)) in enumerate(zip(block.txs, spans, strict=True))],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.height = header.height

    def block(self, height: int) -> Block | None:
        row = self._db.execute("SELECT header, txs FROM blocks WHERE height = ?", (height,)).fetchone()
        if row is None:
            return None
        return Block(_decode_header(bytes(row[0])), codec.decode(bytes(row[1])))

    def results(self, height: int) -> str | None:
        """Block ``height``'s results as ``block_results``' JSON, without its height (``node/results_json``)."""
        row = self._db.execute("SELECT results FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0]).decode()

    def find_tx(self, tx_hash: bytes) -> tuple[int, int, str] | None:
        """The height, index and result (ExecTxResult's JSON) of the committed transaction with this hash."""
        row = self._db.execute(
            "SELECT t.height, t.idx, substr(b.results, t.result_at + 1, t.result_len) FROM txs t "
            "JOIN blocks b ON b.height = t.height WHERE t.hash = ?", (tx_hash,)).fetchone()
        if row is None:
            return None
        if not row[2]:  # a result is never empty: this row has no span
            raise BlockLogError(f"the block log holds no result for transaction {tx_hash.hex().upper()} at height "
                                f"{row[0]}: an older GridMint wrote it after the log was converted")
        return int(row[0]), int(row[1]), bytes(row[2]).decode()

    def base_height(self) -> int:
        row = self._db.execute("SELECT MIN(height) FROM blocks").fetchone()
        return int(row[0] or 0)


def _encode_header(header: Header) -> bytes:
    return codec.encode([header.chain_id, header.height, header.time_ns, header.last_block_hash, header.data_hash,
                         header.app_hash, header.proposer])


def _decode_header(raw: bytes) -> Header:
    chain_id, height, time_ns, last_hash, data, app_hash, proposer = codec.decode(raw)
    return Header(chain_id, height, time_ns, last_hash, data, app_hash, proposer)


def _upgrade(db: sqlite3.Connection) -> None:
    """Create the log's tables, or bring an earlier log to ``RESULTS_FORMAT``: a log of format 0 kept results as a
    JSON record (hex bytes, events as lists), re-encoded here block by block, all or nothing (a crash leaves the
    old log to convert again)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > RESULTS_FORMAT:
        raise BlockLogError(f"this block log has format {version}, written by a newer GridMint; this one reads "
                            f"format {RESULTS_FORMAT}")
    db.executescript(_SCHEMA)
    if version == RESULTS_FORMAT:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {str(row[1]) for row in db.execute("PRAGMA table_info(txs)")}
        for column in ("result_at", "result_len"):
            if column not in columns:
                db.execute(f"ALTER TABLE txs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        heights = [int(row[0]) for row in db.execute("SELECT height FROM blocks ORDER BY height")]
        if heights:
            log.info("Converting the results of %d blocks in the block log to format %d.", len(heights),
                     RESULTS_FORMAT)
        for height in heights:
            txs_blob, record = db.execute("SELECT txs, results FROM blocks WHERE height = ?", (height,)).fetchone()
            try:
                text, spans = encode_block_results(_result_from_record(json.loads(bytes(record)))).block_results()
                located = [(at, length, hashlib.sha256(tx).digest(), height)
                           for tx, (at, length) in zip(codec.decode(bytes(txs_blob)), spans, strict=True)]
            except (ChainError, KeyError, TypeError, ValueError) as error:
                raise BlockLogError(f"block {height} cannot be converted to format {RESULTS_FORMAT} "
                                    f"({type(error).__name__}: {error}); the log is left as it was") from None
            db.execute("UPDATE blocks SET results = ? WHERE height = ?", (text.encode(), height))
            db.executemany("UPDATE txs SET result_at = ?, result_len = ? WHERE hash = ? AND height = ?", located)
        db.execute(f"PRAGMA user_version = {RESULTS_FORMAT}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _result_from_record(record: dict[str, Any]) -> BlockResult:
    """A format-0 results record (what ``save`` wrote before format 1) as the app's BlockResult."""

    def events(raw: list[Any]) -> list[Event]:
        return [Event(event_type, tuple((str(key), str(value)) for key, value in attributes))
                for event_type, attributes in raw]

    return BlockResult(
        [TxResult(result["code"], result["codespace"], result["log"], bytes.fromhex(result["data"]),
                  events(result["events"])) for result in record["tx_results"]],
        [ValidatorUpdate(bytes.fromhex(key), power) for key, power in record.get("validator_updates", [])],
        bytes.fromhex(record.get("app_hash", "")), events(record.get("events", [])))
