"""The CLI against a real devnode process: transfer, balances, and the chain commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridmint.chain.crypto import format_address
from gridmint.cli.main import cli
from gridmint.client.wallet import create_wallet
from tests.helpers import FEE, START_BALANCE, DevnodeProcess, key, write_data_dir

pytestmark = pytest.mark.slow


def test_transfer_balance_and_chain_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wallets = tmp_path / "wallets"
    alice, _ = create_wallet("alice", "pw", wallets, words=None, opslimit=1, memlimit=65536)
    data_dir = tmp_path / "node"
    write_data_dir(data_dir, accounts=("carol",))
    # Fund the new wallet at genesis by rewriting the balance list before the first start.
    genesis = json.loads((data_dir / "genesis.json").read_text())
    genesis["app_state"]["bank"]["balances"].append({"address": alice.address, "amount": START_BALANCE})
    (data_dir / "genesis.json").write_text(json.dumps(genesis))
    node = DevnodeProcess(data_dir, block_time=0.1)
    node.start()
    monkeypatch.setenv("GRIDMINT_WALLET_DIR", str(wallets))
    monkeypatch.setenv("GRIDMINT_NODE", node.url)
    monkeypatch.setenv("GRIDMINT_PASSWORD", "pw")
    runner = CliRunner()
    try:
        bob = format_address(key("bob").address)
        sent = runner.invoke(cli, ["--json", "wallet", "transfer", "alice", bob, "2.5", "--memo", "hi"])
        assert sent.exit_code == 0, sent.output
        receipt = json.loads(sent.output)
        assert receipt["amount"] == 2_500_000_000 and receipt["fee"] == FEE
        balance = json.loads(runner.invoke(cli, ["--json", "wallet", "balance", "alice"]).output)
        assert balance["balance"] == START_BALANCE - 2_500_000_000 - FEE
        assert "2.5 MINT" in runner.invoke(cli, ["wallet", "balance", bob]).output
        too_much = runner.invoke(cli, ["wallet", "transfer", "alice", bob, "5000"])
        assert too_much.exit_code == 1 and "[bank/1 insufficient_funds]" in too_much.output
        assert "balance 997.49998 MINT" in too_much.output  # what is left once this transfer's fee is paid
        after = json.loads(runner.invoke(cli, ["--json", "wallet", "balance", "alice"]).output)
        assert after == balance  # refused at the mempool: nothing changed, no fee taken
        monkeypatch.setenv("GRIDMINT_PASSWORD", "not pw")
        wrong = runner.invoke(cli, ["wallet", "transfer", "alice", bob, "1"])
        assert wrong.exit_code == 1 and "[wallet/1 wrong_password]" in wrong.output
        assert json.loads(runner.invoke(cli, ["--json", "wallet", "balance", "alice"]).output) == balance
        app_hash = json.loads(runner.invoke(cli, ["--json", "chain", "status"]).output)["sync_info"]["latest_app_hash"]
        monkeypatch.setenv("GRIDMINT_PASSWORD", "pw")
        status = json.loads(runner.invoke(cli, ["--json", "chain", "status"]).output)
        assert status["node_info"]["network"] == "gridmint-test"
        assert status["sync_info"]["latest_app_hash"] == app_hash  # blocks kept coming; the state did not move
        tx = runner.invoke(cli, ["chain", "tx", receipt["hash"]])
        assert tx.exit_code == 0 and "succeeded" in tx.output
        block = runner.invoke(cli, ["chain", "block", str(receipt["height"])])
        assert block.exit_code == 0 and "1 txs" in block.output
        assert runner.invoke(cli, ["chain", "tx", "zz"]).exit_code == 2
    finally:
        node.stop()
