"""`gridmint credit open` names the line it opened from the transaction's result data, in words and in --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridmint.chain.credit import MsgRegisterGateway
from gridmint.chain.crypto import format_address
from gridmint.cli import gateway as gateway_cli
from gridmint.cli.main import cli
from tests.support.chain import MINT, Driver, genesis, key, make_app
from tests.support.in_process_client import InProcessClient

CREDIT = {"params": {"min_bond": MINT}}


def test_credit_open_reports_the_line_it_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = ("consumer", "second", "gateway")
    net = Driver(make_app(tmp_path, genesis(accounts=accounts, balance=100 * MINT, credit=CREDIT)))
    net.ok("gateway", MsgRegisterGateway("https://gateway.example", 250, MINT))
    client = InProcessClient(net)  # it answers with no events: the line must come from the result's data
    monkeypatch.setattr(gateway_cli, "ChainClient", lambda node_url: client)
    monkeypatch.setattr(gateway_cli, "send", lambda node_url, signer, messages: client.execute(signer, messages))
    monkeypatch.setattr(gateway_cli, "coldkey", lambda wallet_name, *rest: (None, key(wallet_name)))
    runner = CliRunner()
    opened = runner.invoke(cli, ["credit", "open", "https://gateway.example", "5", "--wallet", "consumer"])
    assert opened.exit_code == 0, opened.output
    assert opened.output.startswith(f"Opened credit line 1 of 5.0 MINT in block {net.height}")
    as_json = runner.invoke(cli, ["--json", "credit", "open", "https://gateway.example", "3", "--wallet", "second"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["line"] == 2
    for name, line in (("consumer", 1), ("second", 2)):
        (held,) = client.query(f"/credit/lines/{format_address(key(name).address)}")
        assert held["id"] == line, held
