"""The devnode's block log: results kept as block_results' JSON, one transaction's result read alone, and logs of
the earlier format (results as a JSON record) converted when opened, all or nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import codec
from gridmint.chain.app import BlockResult, TxResult
from gridmint.chain.module import Event, ValidatorUpdate
from gridmint.node.blockstore import RESULTS_FORMAT, Block, BlockLogError, BlockStore, Header, data_hash
from gridmint.node.results_json import encode_block_results, encode_tx_result

TXS = [b"first transaction", b"second transaction", b"third"]
RESULT = BlockResult(
    [TxResult(events=[Event("transfer", (("sender", "gm1a"), ("amount", "5")))]),
     TxResult(code=3, codespace="bank", log="insufficient funds: é"),
     TxResult(data=b"\x01\x02", events=[Event("neuron_registered", (("uid", "4"),))])],
    [ValidatorUpdate(b"\x07" * 32, 10)], b"\xaa" * 32, [Event("epoch", (("netuid", "1"),))])


def block_at(height: int, txs: list[bytes]) -> Block:
    return Block(Header("chain", height, height * 10**9, b"\x00" * 32, data_hash(txs), b"\x11" * 32, b"\x22" * 20),
                 txs)


def test_a_saved_block_serves_its_results_and_each_transaction_alone(tmp_path: Path) -> None:
    blocks = BlockStore(tmp_path / "blocks.sqlite")
    blocks.save(block_at(1, TXS), encode_block_results(RESULT))
    assert blocks.block(1) == block_at(1, TXS) and blocks.block(2) is None and blocks.results(2) is None
    assert blocks.results(1) == encode_block_results(RESULT).block_results()[0]
    for index, (tx, result) in enumerate(zip(TXS, RESULT.tx_results, strict=True)):
        assert blocks.find_tx(hashlib.sha256(tx).digest()) == (1, index, encode_tx_result(result))
    assert blocks.find_tx(b"\x00" * 32) is None
    blocks.close()


# --- format 0: what the block log held before its results were kept as block_results' JSON --------------------

OLD_SCHEMA = """
CREATE TABLE blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, txs BLOB NOT NULL,
                     results BLOB NOT NULL);
CREATE TABLE txs (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
"""


def old_record(result: BlockResult) -> dict[str, Any]:
    """Format 0's record of a block's results: bytes in hex, events as [type, [[key, value], ...]]."""
    return {"tx_results": [{"code": r.code, "codespace": r.codespace, "log": r.log, "data": r.data.hex(),
                            "events": [[e.type, [list(a) for a in e.attributes]] for e in r.events]}
                           for r in result.tx_results],
            "validator_updates": [[u.pub_key.hex(), u.power] for u in result.validator_updates],
            "app_hash": result.app_hash.hex(), "events": [[e.type, [list(a) for a in e.attributes]]
                                                          for e in result.events]}


def write_old_log(path: Path, records: list[bytes]) -> None:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for height, record in enumerate(records, 1):
        txs = [tx + str(height).encode() for tx in TXS]
        header = codec.encode(["chain", height, height * 10**9, b"\x00" * 32, data_hash(txs), b"", b"\x22" * 20])
        db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?)", (height, b"h" * 32, header, codec.encode(txs), record))
        db.executemany("INSERT INTO txs VALUES (?, ?, ?)",
                       [(hashlib.sha256(tx).digest(), height, index) for index, tx in enumerate(txs)])
    db.commit()
    db.close()


def tamper(path: Path, statement: str, *parameters: Any) -> None:
    """Change the log behind the store's back, as a damaged disk or another program would."""
    db = sqlite3.connect(path)
    db.execute(statement, parameters)
    db.commit()
    db.close()


def contents(path: Path) -> tuple[int, list[Any], list[Any]]:
    db = sqlite3.connect(path)
    try:
        return (db.execute("PRAGMA user_version").fetchone()[0], db.execute("SELECT * FROM blocks").fetchall(),
                db.execute("SELECT * FROM txs ORDER BY height, idx").fetchall())
    finally:
        db.close()


def test_a_log_of_the_earlier_format_is_converted_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "blocks.sqlite"
    write_old_log(path, [json.dumps(old_record(RESULT)).encode(), json.dumps(old_record(RESULT)).encode()])
    blocks = BlockStore(path)
    assert blocks.height == 2
    for height in (1, 2):
        assert blocks.results(height) == encode_block_results(RESULT).block_results()[0]
        for index, result in enumerate(RESULT.tx_results):
            digest = hashlib.sha256(TXS[index] + str(height).encode()).digest()
            assert blocks.find_tx(digest) == (height, index, encode_tx_result(result))
    blocks.close()
    assert contents(path)[0] == RESULTS_FORMAT
    BlockStore(path).close()  # opened again: nothing left to convert
    assert BlockStore(path).results(1) == encode_block_results(RESULT).block_results()[0]


def test_a_log_that_cannot_be_converted_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "blocks.sqlite"
    write_old_log(path, [json.dumps(old_record(RESULT)).encode(), b'{"tx_results": "damaged"}'])
    before = contents(path)
    with pytest.raises(BlockLogError, match=r"block 2 cannot be converted .* left as it was"):
        BlockStore(path)
    assert contents(path) == before and before[0] == 0
    # A record that converts, but transactions that do not decode.
    tamper(path, "UPDATE blocks SET results = ?, txs = ? WHERE height = 2", json.dumps(old_record(RESULT)).encode(),
           b"\xc1")
    before = contents(path)
    with pytest.raises(BlockLogError, match=r"block 2 cannot be converted to format 1 \(ChainError: .*left as it was"):
        BlockStore(path)
    assert contents(path) == before


def test_read_only_serves_blocks_of_any_format_and_converts_nothing(tmp_path: Path) -> None:
    """What ``genesis export`` reads (a header's time): an old log stays old, a newer one is still readable."""
    path = tmp_path / "blocks.sqlite"
    write_old_log(path, [json.dumps(old_record(RESULT)).encode()])
    before = contents(path)
    reader = BlockStore.read_only(path)
    block = reader.block(1)
    reader.close()
    assert block is not None and block.txs == [tx + b"1" for tx in TXS] and block.header.time_ns == 10**9
    assert contents(path) == before


def test_a_transaction_without_a_span_is_a_clear_error(tmp_path: Path) -> None:
    """Rows an older GridMint wrote into a converted log have no span: ``tx`` must say so, not splice nothing."""
    path = tmp_path / "blocks.sqlite"
    blocks = BlockStore(path)
    blocks.save(block_at(1, TXS), encode_block_results(RESULT))
    blocks.close()
    tamper(path, "UPDATE txs SET result_at = 0, result_len = 0 WHERE idx = 1")
    blocks = BlockStore(path)
    with pytest.raises(BlockLogError, match=r"no result for transaction .* older GridMint"):
        blocks.find_tx(hashlib.sha256(TXS[1]).digest())
    assert blocks.find_tx(hashlib.sha256(TXS[0]).digest()) == (1, 0, encode_tx_result(RESULT.tx_results[0]))
    blocks.close()


def test_a_log_of_a_newer_format_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "blocks.sqlite"
    BlockStore(path).close()
    tamper(path, f"PRAGMA user_version = {RESULTS_FORMAT + 1}")
    before = contents(path)
    with pytest.raises(BlockLogError, match=f"format {RESULTS_FORMAT + 1}, written by a newer GridMint"):
        BlockStore(path)
    assert contents(path) == before
