"""cli/output.py's logging for the long-running commands: one format, one --log-level, httpx kept to warnings."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from gridmint.cli.main import cli

LOGS = """
import logging
from gridmint.cli.output import start_logging
start_logging({level!r})
logging.getLogger("gridmint.test").debug("debug line")
logging.getLogger("gridmint.test").info("info line")
logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1:26657")
logging.getLogger("httpx").warning("httpx warning")
"""


def _stderr_of(level: str) -> str:
    done = subprocess.run([sys.executable, "-c", LOGS.format(level=level)], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stderr


def test_lines_at_the_level_asked_and_httpx_only_for_warnings() -> None:
    lines = _stderr_of("debug").splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "DEBUG gridmint.test: debug line", "INFO gridmint.test: info line", "WARNING httpx: httpx warning"]
    assert "info line" not in _stderr_of("warning")


@pytest.mark.parametrize("command", [["node", "start"], ["miner", "run"], ["validator", "run"], ["gateway", "run"],
                                     ["provider", "run"]])
def test_every_long_running_command_takes_the_same_log_levels(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--log-level", "verbose"])
    assert result.exit_code == 2
    assert "Invalid value for '--log-level': 'verbose' is not one of 'debug', 'info', 'warning'" in result.output
