"""``gridmint weights set|commit``: the UID=WEIGHT pairs are read and checked with the command line, before any key
is opened or anything is sent (the commands against a real chain: tests/cli/test_cli_incentive.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gridmint.cli.main import cli

NO_NODE = "http://127.0.0.1:9"  # the discard port: nothing answers, so a command that sent anything would fail


@pytest.mark.parametrize("command", ["set", "commit"])
def test_a_pair_that_is_not_uid_equals_weight_is_refused_and_nothing_is_read_or_written(tmp_path: Path,
                                                                                         command: str) -> None:
    result = CliRunner().invoke(cli, ["weights", command, "1", "3=65535", "3:5", "--wallet", "val",
                                      "--wallet-dir", str(tmp_path), "--node", NO_NODE])
    assert result.exit_code == 2, result.output
    assert "'3:5': expected UID=WEIGHT, such as 3=65535" in result.output
    assert list(tmp_path.iterdir()) == []  # no wallet opened, no commit saved


@pytest.mark.parametrize("command", ["set", "commit"])
def test_well_formed_pairs_pass_on_to_the_wallet(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli, ["weights", command, "1", "3=65535", "4=0", "--wallet", "val",
                                      "--wallet-dir", str(tmp_path), "--node", NO_NODE])
    # the pairs pass; the next step, opening the wallet's hotkey, is what fails: there is none
    assert result.exit_code == 1 and "[wallet/2 not_found]" in result.output, result.output
