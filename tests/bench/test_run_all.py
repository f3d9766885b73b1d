"""bench/run_all.py: it runs the benches it is asked for, keeps their output, and reports what each measured or
that it failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN_ALL), *args], capture_output=True, text=True, timeout=300)


def test_a_bench_run_through_it_reports_its_figures_and_keeps_its_output(tmp_path: Path) -> None:
    completed = run("--only", "escrow_settlement", "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["failed"] == []
    figures = summary["benches"]["escrow_settlement"]["figures"]
    assert figures["ms_per_block_100"] > 0 and figures["ms_per_block_10000"] > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert "ms_per_block_10000" in (tmp_path / "escrow_settlement.log").read_text()


def test_an_unknown_bench_is_refused_by_name() -> None:
    completed = run("--only", "chain_thruput")
    assert completed.returncode != 0
    assert "no such bench: chain_thruput" in completed.stderr
