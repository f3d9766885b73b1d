"""The CLI against a real devnode process and a 4-authority CometBFT network: transfer, balances, and the chain
commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridmint.chain.crypto import format_address
from gridmint.cli.main import cli
from tests.support.chain import MIN_TX_FEE, MINT, key
from tests.support.nodes import funded_devnode
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

FUNDED = 10_000 * MINT  # what funded_devnode gives each wallet
SEND_FEE = MIN_TX_FEE + 100 * (30 + len("hi"))  # chain/fees.py: a send is 30 units, its memo 1 a byte, 100 grains each


def test_transfer_balance_and_chain_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            node_kind: str) -> None:
    node, wallets = funded_devnode(tmp_path, ("alice",), block_time=0.1, kind=node_kind)
    monkeypatch.setenv("GRIDMINT_WALLET_DIR", str(wallets))
    monkeypatch.setenv("GRIDMINT_NODE", node.url)
    monkeypatch.setenv("GRIDMINT_PASSWORD", "pw")
    runner = CliRunner()
    try:
        bob = format_address(key("bob").address)
        sent = runner.invoke(cli, ["--json", "wallet", "transfer", "alice", bob, "2.5", "--memo", "hi"])
        assert sent.exit_code == 0, sent.output
        receipt = json.loads(sent.output)
        assert receipt["amount"] == 2_500_000_000 and receipt["fee"] == SEND_FEE
        balance = json.loads(runner.invoke(cli, ["--json", "wallet", "balance", "alice"]).output)
        assert balance["balance"] == FUNDED - 2_500_000_000 - SEND_FEE
        assert "2.5 MINT" in runner.invoke(cli, ["wallet", "balance", bob]).output
        too_much = runner.invoke(cli, ["wallet", "transfer", "alice", bob, "50000"])
        assert too_much.exit_code == 1 and "[bank/1 insufficient_funds]" in too_much.output
        # What is left once this transfer's fee (a send without a memo: 13,000 grains) is paid.
        assert "balance 9997.4999738 MINT" in too_much.output
        after = json.loads(runner.invoke(cli, ["--json", "wallet", "balance", "alice"]).output)
        assert after == balance  # refused at the mempool: nothing changed, no fee taken
        monkeypatch.setenv("GRIDMINT_PASSWORD", "not pw")
        wrong = runner.invoke(cli, ["wallet", "transfer", "alice", bob, "1"])
        assert wrong.exit_code == 1 and "[wallet/1 wrong_password]" in wrong.output
        assert json.loads(runner.invoke(cli, ["--json", "wallet", "balance", "alice"]).output) == balance
        # CometBFT's status shows the app hash in the latest header, which is the state *before* that block: wait
        # until the transfer's block is two behind, then the state (and so the hash) must not move while blocks come.
        def status() -> dict[str, dict[str, str]]:
            return dict(json.loads(runner.invoke(cli, ["--json", "chain", "status"]).output))

        wait_for(lambda: int(status()["sync_info"]["latest_block_height"]) >= receipt["height"] + 2,
                 "the transfer's block to be two behind", timeout_s=30)
        app_hash = status()["sync_info"]["latest_app_hash"]
        monkeypatch.setenv("GRIDMINT_PASSWORD", "pw")
        later = status()
        assert later["node_info"]["network"] == "gridmint-test"
        assert later["sync_info"]["latest_app_hash"] == app_hash  # blocks kept coming; the state did not move
        tx = runner.invoke(cli, ["chain", "tx", receipt["hash"]])
        assert tx.exit_code == 0 and "succeeded" in tx.output
        block = runner.invoke(cli, ["chain", "block", str(receipt["height"])])
        assert block.exit_code == 0 and "1 txs" in block.output
        assert runner.invoke(cli, ["chain", "tx", "zz"]).exit_code == 2
    finally:
        node.stop()
