from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from gridmint.chain.bank import MsgSend
from gridmint.node.blockstore import RESULTS_FORMAT, Block, Header, data_hash
from gridmint.node.devnode import DevNode, NodeSetupError, write_node_key
from gridmint.node.results_json import encode_block_results
from tests.support.chain import MINT, START_BALANCE, balances, key, signed
from tests.support.nodes import write_data_dir


def test_restart_continues_from_the_last_committed_height(data_dir: Path) -> None:
    node = DevNode(data_dir, block_time=0)
    node.submit(signed(key("alice"), 1, MsgSend(key("bob").address, MINT)))
    node.produce_block()
    node.produce_block()
    height, app_hash, block_hash = node.height, node.last_app_hash, node.last_block_hash
    node.close()
    again = DevNode(data_dir, block_time=0)
    assert (again.height, again.last_app_hash, again.last_block_hash) == (height, app_hash, block_hash)
    block, _ = again.produce_block()
    assert block.header.height == height + 1 and block.header.last_block_hash == block_hash
    assert block.header.app_hash == app_hash
    assert balances(again.app, "bob")["bob"] == START_BALANCE + MINT
    again.close()


def test_a_block_saved_but_not_committed_is_replayed_at_start(data_dir: Path) -> None:
    node = DevNode(data_dir, block_time=0)
    node.produce_block()
    # Die between saving block 2 and committing it: the block log is one ahead of the state.
    tx = signed(key("alice"), 1, MsgSend(key("bob").address, MINT))
    header = Header(node.genesis.chain_id, 2, node.last_block_time_ns + 1, node.last_block_hash, data_hash([tx]),
                    node.last_app_hash, node.key.address)
    result = node.app.finalize_block([tx], 2, header.time_ns, node.key.address)
    node.blocks.save(Block(header, [tx]), encode_block_results(result))
    node.close()
    again = DevNode(data_dir, block_time=0)
    assert again.height == 2 and again.last_app_hash == result.app_hash
    assert balances(again.app, "bob")["bob"] == START_BALANCE + MINT
    again.close()


def test_a_node_whose_key_is_not_an_authority_refuses_to_start(data_dir: Path) -> None:
    write_node_key(data_dir, key("stranger").seed)
    with pytest.raises(NodeSetupError, match="not an authority"):
        DevNode(data_dir)


def test_a_node_whose_block_log_it_cannot_read_refuses_to_start(data_dir: Path) -> None:
    DevNode(data_dir, block_time=0).close()
    db = sqlite3.connect(data_dir / "blocks.sqlite")
    db.execute(f"PRAGMA user_version = {RESULTS_FORMAT + 1}")
    db.commit()
    db.close()
    with pytest.raises(NodeSetupError, match=r"block log .* cannot be opened: .* written by a newer GridMint"):
        DevNode(data_dir)


def test_missing_and_broken_genesis_give_clear_errors(tmp_path: Path, data_dir: Path) -> None:
    from gridmint.chain.errors import ChainError

    with pytest.raises(ChainError, match="gridmint node init"):
        DevNode(tmp_path / "nothing-here")
    document = json.loads((data_dir / "genesis.json").read_text())
    document["app_state"]["bank"]["balances"][0]["amount"] = -5
    (data_dir / "genesis.json").write_text(json.dumps(document))
    with pytest.raises(ChainError, match=r"bank.balances\[0\]"):
        DevNode(data_dir)


def test_metrics_follow_blocks(node: DevNode) -> None:
    node.submit(signed(key("alice"), 1, MsgSend(key("bob").address, MINT)))
    assert "gridmint_mempool_size 1.0" in node.metrics.render().decode()  # read when scraped
    node.produce_block()
    node.produce_block()
    text = node.metrics.render().decode()
    assert "gridmint_block_height 2.0" in text
    assert "gridmint_txs_committed_total 1.0" in text
    assert "gridmint_mempool_size 0.0" in text


def test_a_node_answers_the_heights_it_keeps_and_refuses_older_ones_after_a_restart(data_dir: Path) -> None:
    from gridmint.chain.crypto import format_address

    node = DevNode(data_dir, block_time=0, keep_recent=3)
    node.submit(signed(key("alice"), 1, MsgSend(key("bob").address, MINT)))
    for _ in range(6):
        node.produce_block()
    path = f"/bank/balance/{format_address(key('bob').address)}"
    assert node.app.query(path, height=4).code == 0
    refused = node.app.query(path, height=3)
    assert (refused.codespace, refused.code) == ("query", 3) and "keeps the last 3 heights" in refused.log
    node.close()
    again = DevNode(data_dir, block_time=0, keep_recent=3)
    again.produce_block()
    assert (again.height, again.store.earliest_height) == (7, 5)
    again.close()


def test_keep_recent_is_an_option_of_every_command_that_runs_a_store() -> None:
    from click.testing import CliRunner

    from gridmint.cli.main import cli

    runner = CliRunner()
    for command in (["node", "start"], ["net", "init"], ["net", "app"], ["up"]):
        assert "--keep-recent" in runner.invoke(cli, [*command, "--help"]).output, command
    refused = runner.invoke(cli, ["node", "start", "--keep-recent", "-1"])
    assert refused.exit_code == 2 and "--keep-recent" in refused.output


SENDERS = tuple(f"sender{i}" for i in range(10))


def small_blocks_node(tmp_path: Path) -> DevNode:
    """A devnode of an hour's block time whose genesis lets a block hold 303 transfers (max_block_units 100,000),
    SENDERS funded."""
    data_dir = tmp_path / "node"
    write_data_dir(data_dir, accounts=SENDERS)
    genesis_path = data_dir / "genesis.json"
    document = json.loads(genesis_path.read_text())
    document["app_state"]["bank"]["params"]["max_block_units"] = 100_000
    genesis_path.write_text(json.dumps(document))
    return DevNode(data_dir, block_time=3_600)


def test_after_a_full_block_the_next_follows_at_once(tmp_path: Path) -> None:
    """Blocks come a block time apart, except behind a backlog: a block full of work is followed at once, so what
    waits does not wait a block time for room it could have now. An hour's block time shows it: the backlog is
    committed in three blocks long before the first timed block would be due."""
    node = small_blocks_node(tmp_path)
    node.produce_block()  # a first block, empty: not full, so the loop below would wait an hour for the next
    assert not node.backlogged
    for nonce in range(1, 71):
        for name in SENDERS:
            node.submit(signed(key(name), nonce, MsgSend(key("bob").address, 1)))
    node.produce_block()
    assert node.backlogged and len(node.mempool) == 700 - 303

    async def run_until_drained() -> None:
        producer = asyncio.create_task(node.produce_forever())
        try:
            async with asyncio.timeout(60):  # a bound for the test, an hour below the block time
                while len(node.mempool):
                    await asyncio.sleep(0.01)
        finally:
            producer.cancel()

    asyncio.run(run_until_drained())
    assert node.height == 4 and not node.backlogged  # 303, 303, then the last 94: a block that is not full
    assert balances(node.app, "bob")["bob"] == 700
    node.close()


def test_the_first_block_keeps_to_the_genesis_work_budget(tmp_path: Path) -> None:
    """The first block runs on the genesis state, so it is priced there: a genesis's lower max_block_units holds in
    it (priced on the empty store, the default's 2,424 transfers, it took all 1,000)."""
    node = small_blocks_node(tmp_path)
    for nonce in range(1, 101):
        for name in SENDERS:
            node.submit(signed(key(name), nonce, MsgSend(key("bob").address, 1)))
    block, _ = node.produce_block()
    assert node.height == 1 and len(block.txs) == 303 and node.backlogged and len(node.mempool) == 1_000 - 303
    node.close()
