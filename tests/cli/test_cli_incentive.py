"""The incentive-layer commands against a real devnode: subnet, register, stake, commit-reveal, set weights,
endpoint, metagraph."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gridmint.cli.main import cli
from gridmint.client.wallet import create_wallet
from tests.helpers import MINT, DevnodeProcess, write_data_dir

pytestmark = pytest.mark.slow
FAST = {"opslimit": 1, "memlimit": 65_536}


def test_subnet_lifecycle_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wallets = tmp_path / "wallets"
    funded = []
    for name in ("owner", "val", "miner"):
        wallet, _ = create_wallet(name, "pw", wallets, **FAST)
        funded += [wallet.address, wallet.hotkey_address("default")]
    data_dir = tmp_path / "node"
    write_data_dir(data_dir, accounts=())
    genesis = json.loads((data_dir / "genesis.json").read_text())
    genesis["app_state"]["bank"]["balances"] = [{"address": a, "amount": 10_000 * MINT} for a in funded]
    genesis["app_state"]["subnets"] = {"params": {"default_tempo": 5, "min_lock": 100 * MINT}}
    (data_dir / "genesis.json").write_text(json.dumps(genesis))
    node = DevnodeProcess(data_dir, block_time=0.05)
    node.start()
    monkeypatch.setenv("GRIDMINT_WALLET_DIR", str(wallets))
    monkeypatch.setenv("GRIDMINT_NODE", node.url)
    monkeypatch.setenv("GRIDMINT_PASSWORD", "pw")
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, ["--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def metagraph() -> dict[str, Any]:
        return run("subnet", "metagraph", "1")  # type: ignore[no-any-return]

    def wait_for(condition: Any, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            graph = metagraph()
            if condition(graph):
                return graph
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        created = run("subnet", "create", "--modality", "text-generation", "--name", "demo", "--wallet", "owner")
        assert created["netuid"] == 1 and created["lock"] == 100 * MINT
        assert run("subnet", "register", "1", "--wallet", "val")["uid"] == 0
        assert run("subnet", "register", "1", "--wallet", "miner")["uid"] == 1
        run("stake", "add", "1", "val/default", "500", "--wallet", "val")
        assert run("stake", "list", "val")[0]["amount"] >= 500 * MINT  # dividends compound into it
        wait_for(lambda g: g["uids"][0]["permit"] == 1, "a validator permit")

        run("weights", "commit", "1", "1=65535", "--wallet", "val")
        epoch = run("subnet", "show", "1")["epoch"]
        deadline = time.monotonic() + 30
        while run("subnet", "show", "1")["epoch"] == epoch and time.monotonic() < deadline:
            time.sleep(0.05)
        run("weights", "reveal", "1", "--wallet", "val")
        graph = wait_for(lambda g: g["uids"][1]["incentive"] > 0, "the miner's incentive")
        assert graph["uids"][1]["incentive"] == 1 << 30

        run("subnet", "set-param", "1", "commit_reveal", "0", "--wallet", "owner")
        assert run("subnet", "params", "1")["commit_reveal"] == 0
        limited = runner.invoke(cli, ["weights", "set", "1", "1=100", "--wallet", "val"])
        assert limited.exit_code == 1 and "[weights/7 rate_limited]" in limited.output
        run("subnet", "set-param", "1", "weights_rate_limit", "0", "--wallet", "owner")
        run("weights", "set", "1", "1=100", "--wallet", "val")
        run("endpoint", "announce", "1", "http://127.0.0.1:9000", "--model", "smollm2-135m", "--price", "0.001",
            "--wallet", "miner")
        graph = wait_for(lambda g: g["uids"][1]["endpoint"] is not None and g["uids"][1]["emission"] > 0,
                         "the endpoint and emission")
        assert graph["uids"][1]["endpoint"]["models"] == ["smollm2-135m"]
        assert graph["uids"][0]["dividends"] == 1 << 30
        listed = run("subnet", "list")
        assert listed[0]["n"] == 2 and listed[0]["modality"] == "text-generation"
        table = runner.invoke(cli, ["subnet", "metagraph", "1"])
        assert "http://127.0.0.1:9000" in table.output and "UID" in table.output
        refused = runner.invoke(cli, ["subnet", "set-param", "1", "tempo", "1", "--wallet", "owner"])
        assert refused.exit_code == 1 and "[subnets/5 param_out_of_bounds]" in refused.output
        run("subnet", "dissolve", "1", "--wallet", "owner")
        assert run("subnet", "list") == []
        assert run("stake", "list", "val") == []
    finally:
        node.stop()
