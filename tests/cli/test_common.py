"""cli/common.py's listen_options: the gateway, the miner and the provider say where they listen and where they are
reached with the same three options, each with its own default port."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from gridmint.cli.main import cli


@pytest.mark.parametrize(("group", "port"), [("gateway", 8080), ("miner", 8091), ("provider", 8443)])
def test_each_server_listens_on_its_own_default_port_and_is_reached_at_the_same_options(group: str,
                                                                                         port: int) -> None:
    group_command = cli.commands[group]
    assert isinstance(group_command, click.Group)
    params = {p.name: p for p in group_command.commands["run"].params}
    assert params["host"].default == "127.0.0.1" and params["port"].default == port
    assert params["external_url"].default is None
    result = CliRunner().invoke(cli, [group, "run", "--port", "eighty"])
    assert result.exit_code == 2 and "'eighty' is not a valid integer" in result.output
