"""The devnode's block log: headers, transactions and their results, in SQLite beside the app's state.

Headers and transactions use the canonical codec; results are JSON (they are the node's record of what the app
answered, never hashed into consensus, and JSON is the cheapest to write for large blocks).

A block is saved with its results *after* ``finalize_block`` and *before* the app's ``commit``. If the node dies
between the two, the block store is one block ahead of the app, and start-up replays that block (as CometBFT's
handshake does); a block that never reached the store was never reported, so nothing reported is lost.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmint.chain import codec


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, txs BLOB NOT NULL, results BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
"""


class BlockStore:
    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        self.height: int = row[0] or 0

    def close(self) -> None:
        self._db.close()

    def open_reader(self) -> BlockStore:
        """The block log on a second, read-only connection, for reads on another thread (WAL: they do not wait
        for ``save``)."""
        reader = BlockStore.__new__(BlockStore)
        reader._db = sqlite3.connect(f"file:{urllib.parse.quote(self._path)}?mode=ro", uri=True,
                                     isolation_level=None, check_same_thread=False)
        reader.height = self.height
        reader._path = self._path
        return reader

    def save(self, block: Block, results: dict[str, Any]) -> None:
        header = block.header
        if header.height != self.height + 1 and self.height != 0:
            raise ValueError(f"block {header.height} saved after block {self.height}")
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR REPLACE INTO blocks (height, hash, header, txs, results) VALUES (?, ?, ?, ?, ?)",
                (header.height, block.hash, _encode_header(header), codec.encode(block.txs),
                 json.dumps(results, separators=(",", ":")).encode()),
            )
            db.executemany(
                "INSERT OR REPLACE INTO txs (hash, height, idx) VALUES (?, ?, ?)",
                [(hashlib.sha256(tx).digest(), header.height, index) for index, tx in enumerate(block.txs)],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.height = header.height

    def block(self, height: int) -> tuple[Block, dict[str, Any]] | None:
        row = self._db.execute("SELECT header, txs, results FROM blocks WHERE height = ?", (height,)).fetchone()
        if row is None:
            return None
        return Block(_decode_header(bytes(row[0])), codec.decode(bytes(row[1]))), json.loads(bytes(row[2]))

    def find_tx(self, tx_hash: bytes) -> tuple[int, int] | None:
        row = self._db.execute("SELECT height, idx FROM txs WHERE hash = ?", (tx_hash,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def base_height(self) -> int:
        row = self._db.execute("SELECT MIN(height) FROM blocks").fetchone()
        return int(row[0] or 0)


def _encode_header(header: Header) -> bytes:
    return codec.encode([header.chain_id, header.height, header.time_ns, header.last_block_hash, header.data_hash,
                         header.app_hash, header.proposer])


def _decode_header(raw: bytes) -> Header:
    chain_id, height, time_ns, last_hash, data, app_hash, proposer = codec.decode(raw)
    return Header(chain_id, height, time_ns, last_hash, data, app_hash, proposer)
