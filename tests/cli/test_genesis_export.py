"""``gridmint genesis export`` on a node's data directory: the file restarts the chain with its app hash."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from gridmint.chain.app import MODULES, App, BlockResult
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.chain.genesis import load_genesis
from gridmint.chain.store import Store
from gridmint.cli.main import cli
from gridmint.client.chain_client import ChainClient
from gridmint.node.blockstore import RESULTS_FORMAT, Block, BlockStore, Header, data_hash
from gridmint.node.results_json import encode_block_results
from tests.support.chain import START_BALANCE, Chain, genesis, key, signed
from tests.support.nodes import DevnodeProcess, write_data_dir


def node_with_blocks(data_dir: Path, blocks: int, keep_recent: int = 0) -> list[bytes]:
    """A data directory whose state has ``blocks`` blocks of transfers; the app hash after each."""
    data_dir.mkdir()
    store = Store(data_dir / "state.sqlite", keep_recent=keep_recent)
    app = App(store)
    app.init_chain(genesis())
    chain = Chain(app)
    hashes = []
    for nonce in range(1, blocks + 1):
        chain.block(signed(key("alice"), nonce, MsgSend(key("bob").address, nonce)))
        hashes.append(store.app_hash)
    store.close()
    return hashes


def export(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--json", "genesis", "export", *args], catch_exceptions=False)


def restarted_hash(tmp_path: Path, path: Path) -> bytes:
    _, app_hash = App(Store(tmp_path / "restarted.sqlite")).init_chain(load_genesis(path, MODULES))
    return app_hash


def test_export_at_a_height_restarts_with_that_heights_app_hash(tmp_path: Path) -> None:
    hashes = node_with_blocks(tmp_path / "node", 4)
    output = tmp_path / "exported.json"
    result = export("--data-dir", str(tmp_path / "node"), "--height", "2", "-o", str(output),
                    "--genesis-time", "2026-06-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert (answer["height"], answer["initial_height"], answer["note"]) == (2, 3, "")
    assert restarted_hash(tmp_path, output) == hashes[1]
    assert json.loads(output.read_text())["genesis_time"] == "2026-06-01T00:00:00Z"


def test_a_pruned_height_exports_the_latest_and_says_so(tmp_path: Path) -> None:
    hashes = node_with_blocks(tmp_path / "node", 6, keep_recent=2)
    output = tmp_path / "exported.json"
    result = export("--data-dir", str(tmp_path / "node"), "--height", "1", "-o", str(output))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["height"] == 6 and "height 1 was pruned" in answer["note"]
    assert restarted_hash(tmp_path, output) == hashes[-1]


def test_what_cannot_be_exported_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    node_with_blocks(tmp_path / "node", 2)
    output = tmp_path / "exported.json"
    beyond = export("--data-dir", str(tmp_path / "node"), "--height", "3", "-o", str(output))
    assert beyond.exit_code == 1 and "height 3 is not committed; the latest is 2" in beyond.output
    missing = export("--data-dir", str(tmp_path / "nowhere"), "-o", str(output))
    assert missing.exit_code == 2 and "no chain state" in missing.output
    assert not output.exists() and not (tmp_path / "nowhere").exists()


def test_export_reads_a_block_log_of_another_format_as_it_is(tmp_path: Path) -> None:
    """The genesis time comes from the block's header, alike in every format of the block log: an export neither
    converts the log nor stops at one written by a newer GridMint."""
    node_with_blocks(tmp_path / "node", 2)
    blocks = BlockStore(tmp_path / "node" / "blocks.sqlite")
    blocks.save(Block(Header("chain", 1, 1_780_000_000 * 10**9, b"", data_hash([]), b"", b"\x00" * 20), []),
                encode_block_results(BlockResult([], [], b"", [])))
    blocks.close()
    db = sqlite3.connect(tmp_path / "node" / "blocks.sqlite")
    db.execute(f"PRAGMA user_version = {RESULTS_FORMAT + 1}")
    db.commit()
    db.close()
    output = tmp_path / "exported.json"
    result = export("--data-dir", str(tmp_path / "node"), "--height", "1", "-o", str(output))
    assert result.exit_code == 0, result.output
    assert json.loads(output.read_text())["genesis_time"].startswith("2026-05-28T")
    db = sqlite3.connect(tmp_path / "node" / "blocks.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == RESULTS_FORMAT + 1
    db.close()


def test_a_devnode_started_from_the_export_goes_on_from_the_next_height(tmp_path: Path) -> None:
    hashes = node_with_blocks(tmp_path / "node", 3)
    write_data_dir(tmp_path / "restarted", accounts=())
    assert export("--data-dir", str(tmp_path / "node"), "-o", str(tmp_path / "restarted" / "genesis.json")
                  ).exit_code == 0
    node = DevnodeProcess(tmp_path / "restarted", block_time=0.05)
    node.start()
    try:
        with ChainClient(node.url) as client:
            first = client.call("block", height="4")["block"]["header"]
            assert bytes.fromhex(first["app_hash"]) == hashes[-1]  # block 4 carries the state it started from
            assert client.balance(format_address(key("bob").address)) == START_BALANCE + 1 + 2 + 3
            outcome = client.send(key("alice"), [MsgSend(key("bob").address, 10)])
            assert outcome.code == 0 and outcome.height > 4, outcome
    finally:
        node.stop()
