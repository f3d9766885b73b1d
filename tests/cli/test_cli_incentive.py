"""The incentive-layer commands against a real devnode and a 4-authority CometBFT network: subnet, register,
stake, commit-reveal, set weights, endpoint, metagraph, dissolve (the subnet and its first registrations come from
tests/support/live_subnet.py, which drives the same commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.cli.main import cli
from tests.support.chain import MINT
from tests.support.live_subnet import live_subnet
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_subnet_lifecycle_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node_kind: str) -> None:
    with live_subnet(tmp_path, monkeypatch, tempo=20, kind=node_kind) as live:
        run, runner = live.run, live.runner
        info = run("subnet", "show", "1")
        assert info["lock"] == 100 * MINT and info["n"] == 2
        graph = live.metagraph()
        assert graph["uids"][0]["permit"] == 1 and graph["uids"][1]["permit"] == 0
        assert run("stake", "list", "val")[0]["amount"] >= 500 * MINT  # dividends compound into it

        for _ in range(5):  # a loaded machine can miss the reveal epoch; then the chain says so and we commit again
            run("weights", "commit", "1", "1=65535", "--wallet", "val")
            epoch = run("subnet", "show", "1")["epoch"]
            wait_for(lambda epoch=epoch: run("subnet", "show", "1")["epoch"] != epoch, "the next epoch",
                     timeout_s=30, interval_s=0.05)
            revealed = runner.invoke(cli, ["weights", "reveal", "1", "--wallet", "val"])
            if revealed.exit_code == 0:
                break
            assert "[weights/12 reveal_too_late]" in revealed.output, revealed.output
        else:
            raise AssertionError("never revealed in time")
        graph = live.wait_for(lambda g: g["uids"][1]["incentive"] > 0, "the miner's incentive")
        assert graph["uids"][1]["incentive"] == 1 << 30

        run("subnet", "set-param", "1", "commit_reveal", "0", "--wallet", "owner")
        assert run("subnet", "params", "1")["commit_reveal"] == 0
        limited = runner.invoke(cli, ["weights", "set", "1", "1=100", "--wallet", "val"])
        assert limited.exit_code == 1 and "[weights/7 rate_limited]" in limited.output
        run("subnet", "set-param", "1", "weights_rate_limit", "0", "--wallet", "owner")
        run("weights", "set", "1", "1=100", "--wallet", "val")
        run("endpoint", "announce", "1", "http://127.0.0.1:9000", "--model", "smollm2-135m", "--price", "0.001",
            "--wallet", "miner")
        graph = live.wait_for(lambda g: g["uids"][1]["endpoint"] is not None and g["uids"][1]["emission"] > 0,
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
        # The stakes come back from the next block on (the dissolve's own block reserved no room for them).
        wait_for(lambda: run("stake", "list", "val") == [], "the dissolved subnet's stakes to come back", timeout_s=30,
                 interval_s=0.2)
