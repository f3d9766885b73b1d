"""The README's main command: ``gridmint demo`` starts a devnode, makes two wallets, transfers, shows balances."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "gridmint.cli.main", "--json", "demo", "--workdir", str(tmp_path), "--amount", "3"],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["code"] == 0 and summary["height"] >= 1
    assert summary["balances"]["bob"] == 3 * 10**9
    fee = 10_000 + 100 * (30 + len("gridmint demo"))  # chain/fees.py: the envelope, a send, its memo
    assert summary["balances"]["alice"] == 1000 * 10**9 - 3 * 10**9 - fee
    assert "Starting the devnode" in completed.stderr
    assert (tmp_path / "devnode.log").read_text().count("Committed block") >= 1
