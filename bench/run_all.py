"""Run every benchmark of this folder, one after another on an otherwise quiet machine, and collect the JSON line
each ends with: what README.md's table quotes, all measured on the code checked out now.

    .venv/bin/python bench/run_all.py [--only chain_throughput,yuma_epoch] [--skip state_sync] [--out DIR]

Each bench runs as README.md's table writes its command (its defaults), in a process of its own, with its whole
output kept in ``--out`` (``bench-runs/<time>/`` by default) next to ``summary.json``. A bench that fails, or ends
without a JSON line, is reported as such and the others still run. ``transformers_gpu.py`` needs torch and a GPU
and is left to its own command (README.md). The last line is one JSON object: every bench's figures by name, and
the commit they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...] = ()
    timeout_s: int = 900
    needs_root: bool = False


# In README.md's order. Each runs with its own defaults: the figures quoted there.
BENCHES = (
    Bench("chain_throughput"),
    Bench("yuma_epoch"),
    Bench("adversarial_block"),
    Bench("metagraph_query", timeout_s=1_800),  # its setup registers 4,096 UIDs at full-subnet prices: ~14 min
    Bench("miner_rpc"),
    Bench("escrow_settlement"),
    Bench("settlement"),
    Bench("gateway_overhead"),
    Bench("gateway_load"),
    Bench("network_throughput"),
    Bench("state_growth"),
    Bench("state_sync", timeout_s=1_800),
    Bench("sandbox_overhead", needs_root=True),
    Bench("validator_round"),
    Bench("forecast_scoring"),
    Bench("forecast_cost"),
)


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    exit_code: int | None  # None: it ran past its timeout
    figures: dict[str, Any] | None  # its last JSON line

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.figures is not None

    def describe(self) -> str:
        if self.exit_code is None:
            return "ran past its timeout"
        if self.exit_code != 0:
            return f"failed (exit {self.exit_code})"
        return "no JSON line at the end" if self.figures is None else "ok"


def last_json_line(output: str) -> dict[str, Any] | None:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    return None


def run_bench(bench: Bench, out_dir: Path) -> Outcome:
    log_path = out_dir / f"{bench.name}.log"
    command = [sys.executable, str(ROOT / "bench" / f"{bench.name}.py"), *bench.args]
    started = time.monotonic()
    with log_path.open("w") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        try:
            completed = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                       timeout=bench.timeout_s, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            exit_code: int | None = completed.returncode
        except subprocess.TimeoutExpired:
            exit_code = None
    seconds = time.monotonic() - started
    return Outcome(bench.name, seconds, exit_code, last_json_line(log_path.read_text()))


def current_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return result.stdout.strip() + ("+changes" if dirty else "")


def select(only: str, skip: str) -> list[Bench]:
    names = {bench.name for bench in BENCHES}
    wanted = [name for name in (only.split(",") if only else []) + (skip.split(",") if skip else []) if name]
    unknown = sorted(set(wanted) - names)
    if unknown:
        raise SystemExit(f"no such bench: {', '.join(unknown)}; the benches are {', '.join(sorted(names))}")
    chosen = [bench for bench in BENCHES if not only or bench.name in only.split(",")]
    return [bench for bench in chosen if bench.name not in skip.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated names (without .py)")
    parser.add_argument("--skip", default="", help="comma-separated names (without .py)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    benches = select(args.only, args.skip)
    out_dir = args.out or ROOT / "bench-runs" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    commit = current_commit()
    print(f"Running {len(benches)} benches on {commit}; output in {out_dir}", flush=True)
    outcomes = []
    for index, bench in enumerate(benches, 1):
        if bench.needs_root and os.geteuid() != 0:
            print(f"[{index}/{len(benches)}] {bench.name}: skipped (needs root)", flush=True)
            continue
        print(f"[{index}/{len(benches)}] {bench.name} ...", end=" ", flush=True)
        outcome = run_bench(bench, out_dir)
        outcomes.append(outcome)
        print(f"{outcome.describe()} in {outcome.seconds:.0f} s", flush=True)
    failed = [o.name for o in outcomes if not o.ok]
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} benches ended with their figures"
          + (f"; not: {', '.join(failed)} (see their logs)" if failed else ""))
    summary = {"commit": commit, "failed": failed,
               "benches": {o.name: {"seconds": round(o.seconds, 1), "figures": o.figures} for o in outcomes}}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
