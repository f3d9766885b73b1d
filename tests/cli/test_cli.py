"""The ``gridmint`` command: help everywhere, JSON where scripts want it, clear errors and no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridmint.cli.main import cli


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GRIDMINT_WALLET_DIR", str(tmp_path / "wallets"))
    monkeypatch.setenv("GRIDMINT_PASSWORD", "test password")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


COMMANDS = [[], ["wallet"], ["wallet", "create"], ["wallet", "list"], ["wallet", "show"], ["wallet", "restore"],
            ["wallet", "new-hotkey"],
            ["wallet", "balance"], ["wallet", "transfer"], ["node"], ["node", "start"], ["node", "init"],
            ["chain"], ["chain", "status"], ["chain", "block"], ["chain", "tx"], ["demo"],
            ["subnet"], ["subnet", "create"], ["subnet", "list"], ["subnet", "show"], ["subnet", "params"],
            ["subnet", "set-param"], ["subnet", "dissolve"], ["subnet", "register"], ["subnet", "metagraph"],
            ["stake"], ["stake", "add"], ["stake", "remove"], ["stake", "list"], ["weights"], ["weights", "set"],
            ["weights", "commit"], ["weights", "reveal"], ["endpoint"], ["endpoint", "announce"], ["miner"],
            ["miner", "run"], ["validator"], ["validator", "run"],
            ["market"], ["market", "providers"], ["market", "match"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "gridmint")
def test_every_command_has_help(run, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_wallet_create_list_show_restore(run) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(run("--json", "wallet", "create", "alice").output)
    assert created["address"].startswith("gm1") and len(created["mnemonic"].split()) == 24
    listed = json.loads(run("--json", "wallet", "list").output)
    assert [w["name"] for w in listed] == ["alice"]
    shown = run("wallet", "show", "alice").output
    assert created["address"] in shown and "default" in shown
    restored = json.loads(run("--json", "wallet", "restore", "copy", "--mnemonic", created["mnemonic"]).output)
    assert restored["address"] == created["address"]
    hot = json.loads(run("--json", "wallet", "new-hotkey", "alice", "miner", "--encrypt").output)
    assert hot["encrypted"] and hot["address"].startswith("gm1") and hot["address"] != created["address"]
    assert hot["address"] in run("wallet", "show", "alice").output
    assert run("wallet", "new-hotkey", "ghost", "miner").exit_code == 1
    assert "[wallet/3 exists]" in run("wallet", "new-hotkey", "alice", "miner").output


@pytest.mark.parametrize("args, code", [
    (["wallet", "show", "ghost"], "wallet/2"),
    (["wallet", "create", "../evil"], "wallet/6"),
    (["wallet", "restore", "x", "--mnemonic", "not a phrase"], "wallet/4"),
    (["wallet", "balance", "gm1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"], "tx/13"),
    (["wallet", "balance", "gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80", "--node", "http://127.0.0.1:9"], "client/1"),
    (["chain", "status", "--node", "http://127.0.0.1:9"], "client/1"),
])
def test_user_mistakes_are_one_clear_line(run, args: list[str], code: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and f"[{code} " in result.output
    assert "Traceback" not in result.output


def test_errors_as_json(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--json", "wallet", "show", "ghost")
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["name"] == "not_found"


def test_wrong_password_on_transfer(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    run("wallet", "create", "alice")
    monkeypatch.setenv("GRIDMINT_PASSWORD", "not the password")
    result = run("wallet", "transfer", "alice", "gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80", "1")
    assert result.exit_code == 1 and "[wallet/1 wrong_password]" in result.output


def test_bad_amount_is_a_usage_error(run) -> None:  # type: ignore[no-untyped-def]
    run("wallet", "create", "alice")
    result = run("wallet", "transfer", "alice", "gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80", "1.0000000001")
    assert result.exit_code == 2 and "decimals" in result.output
    for args in (["demo", "--amount", "lots"], ["stake", "add", "1", "gm1x", "3.x", "--wallet", "alice"],
                 ["subnet", "register", "1", "--max-burn", "x", "--wallet", "alice"]):
        refused = run(*args)
        assert refused.exit_code == 2 and "is not an amount" in refused.output, args


def test_node_init_writes_a_genesis(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "node"
    out = json.loads(run("--json", "node", "init", "--data-dir", str(data_dir), "--chain-id", "test-chain",
                         "--fund", "gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80=5").output)
    genesis = json.loads((data_dir / "genesis.json").read_text())
    assert genesis["chain_id"] == "test-chain" and len(out["dev_accounts"]) == 2
    balances = {b["address"]: b["amount"] for b in genesis["app_state"]["bank"]["balances"]}
    assert balances["gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80"] == 5 * 10**9
    again = run("node", "init", "--data-dir", str(data_dir))
    assert again.exit_code == 1 and "--force" in again.output
    key_before = (data_dir / "node_key.json").read_text()
    bad = run("node", "init", "--data-dir", str(data_dir), "--force", "--chain-id", "Bad Chain!")
    assert bad.exit_code == 1 and "chain_id" in bad.output
    assert json.loads((data_dir / "genesis.json").read_text()) == genesis  # a refused init changes nothing
    assert (data_dir / "node_key.json").read_text() == key_before
