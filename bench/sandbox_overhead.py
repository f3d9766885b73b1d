"""What the process runtime's sandbox costs a lease: the time from ``start`` to a service that accepts on its port,
and the throughput of a compute-bound command, inside the sandbox and outside it, in the same run.

Inside: ``ProcessRuntime().start`` with a real lease (its own user id, control group, loop-mounted disk and
bubblewrap namespaces), the port reached the way the provider's proxy reaches it (from inside the lease's network
namespace). Outside: the same command as a plain subprocess, its port on 127.0.0.1, polled the same way. The CPU
rounds alternate a sandboxed lease of 1 CPU (``cpu_millis`` 1000: a quota of one core and a cpuset of one) with the
same command pinned to the core the sandbox reported (the order alternating from pair to pair), so both run on
the same core at nearly the same moment.
It must run as root (the runtime needs it) on a host where ``ProcessRuntime.problems()`` is empty.

    .venv/bin/python bench/sandbox_overhead.py [--startup-rounds 10] [--cpu-rounds 20] [--hashes 2000000]

The last line is JSON: {"startup_ms", "startup_baseline_ms", "cpu_ratio", "rounds", ...}; ``startup_ms`` is the
median sandboxed start-up, ``cpu_ratio`` the median sandboxed throughput over the median outside, and
``cpu_pair_ratio`` the median of each pair's own ratio (less moved by the machine's drift from second to second).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gridmint.market.deployment import Service
from gridmint.market.provider.inventory import Need
from gridmint.market.provider.runtimes.base import EXITED, RUNNING, Endpoint, LaunchSpec
from gridmint.market.provider.runtimes.process import ProcessRuntime, ProcessWorkload
from gridmint.market.provider.sandbox.launch import SANDBOX_PATH
from gridmint.ports import free_port

LEASE_BASE = 900_000  # far above any lease a test or a devnode opens
PORT_DECLARED = 8080
READY_TIMEOUT_S = 10.0
POLL_S = 0.002
MEMORY_MB = 256
# A tiny HTTP server on $PORT: what a tenant's service is, at its smallest.
SERVER = ("import http.server, os; http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), "
          "http.server.BaseHTTPRequestHandler).serve_forever()")
# Single-threaded, compute-bound: a chain of SHA-256 digests (interpreter and hashing), timed by the command itself
# so that neither start-up nor the sandbox's set-up counts; it reports the cores it may run on.
HASHER = ("import hashlib, json, os, sys, time; n = int(sys.argv[1]); d = b'gridmint'; "
          "w, c = time.perf_counter(), time.process_time()\n"
          "for _ in range(n): d = hashlib.sha256(d).digest()\n"
          "print(json.dumps({'ops': n, 'wall_s': time.perf_counter() - w, 'cpu_s': time.process_time() - c, "
          "'cores': sorted(os.sched_getaffinity(0)), 'digest': d.hex()[:16]}), flush=True)")


def python3() -> str:
    """The interpreter the sandbox finds on its PATH, run by absolute path outside too: the same program both ways."""
    found = shutil.which("python3", path=SANDBOX_PATH)
    if found is None:
        raise SystemExit(f"no python3 on {SANDBOX_PATH}")
    return found


def start_lease(runtime: ProcessRuntime, lease_id: int, root: Path, name: str, command: list[str],
                ports: list[int]) -> ProcessWorkload:
    workdir = root / f"lease-{lease_id}"
    workdir.mkdir()
    return runtime.start(LaunchSpec(lease_id, [Service(name, None, command, {}, ports)], Need(1000, MEMORY_MB, 0),
                                    (), workdir))


def wait_answers(endpoint: Endpoint, alive: Callable[[], bool]) -> bool:
    """Poll until the port accepts; give up when the process is gone or after READY_TIMEOUT_S."""
    deadline = time.perf_counter() + READY_TIMEOUT_S
    while time.perf_counter() < deadline:
        if endpoint.answers(0.2):
            return True
        if not alive():
            return False
        time.sleep(POLL_S)
    return False


def startup_inside(runtime: ProcessRuntime, lease_id: int, root: Path, py: str) -> tuple[float, float] | None:
    """(ms from ``start`` to the port answering, ms ``start`` itself took), or None if the service never answered."""
    started = time.perf_counter()
    workload = start_lease(runtime, lease_id, root, "web", [py, "-c", SERVER], [PORT_DECLARED])
    try:
        returned = time.perf_counter()
        endpoint = workload.endpoint("web")
        if endpoint is None or not wait_answers(endpoint, lambda: workload.states()["web"].state == RUNNING):
            print(f"  lease {lease_id}: the service did not answer: {workload.states()} {workload.logs(5)!r}")
            return None
        return (time.perf_counter() - started) * 1000, (returned - started) * 1000
    finally:
        workload.stop()


def startup_outside(py: str) -> float | None:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([py, "-c", SERVER], env={"PATH": SANDBOX_PATH, "PORT": str(port)},
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_answers(Endpoint("127.0.0.1", port), lambda: process.poll() is None):
            print(f"  outside: the server did not answer (exit {process.poll()})")
            return None
        return (time.perf_counter() - started) * 1000
    finally:
        process.terminate()
        process.wait()


@dataclass(frozen=True)
class HashRun:
    """What one CPU round's command reported about itself."""

    ops: int
    wall_s: float
    cpu_s: float
    cores: list[int]
    digest: str

    @property
    def per_second(self) -> float:
        return self.ops / self.wall_s


def parse_result(text: str) -> HashRun | None:
    """The command's JSON line, from its own output or from a lease's log tail (``[service] line``)."""
    for line in reversed(text.splitlines()):
        line = line.split("] ", 1)[-1] if line.startswith("[") else line
        if line.startswith("{"):
            try:
                return HashRun(**json.loads(line))
            except (TypeError, ValueError):
                return None
    return None


def cpu_inside(runtime: ProcessRuntime, lease_id: int, root: Path, py: str, hashes: int) -> HashRun | None:
    workload = start_lease(runtime, lease_id, root, "cpu", [py, "-c", HASHER, str(hashes)], [])
    try:
        deadline = time.perf_counter() + 600
        while (state := workload.states()["cpu"]).state == RUNNING and time.perf_counter() < deadline:
            time.sleep(0.02)
        result = parse_result(workload.logs(20))
        if state.state != EXITED or result is None:
            print(f"  lease {lease_id}: {state} {workload.logs(5)!r}")
            return None
        return result
    finally:
        workload.stop()


def cpu_outside(py: str, hashes: int, cores: list[int]) -> HashRun | None:
    done = subprocess.run([py, "-c", HASHER, str(hashes)], env={"PATH": SANDBOX_PATH}, capture_output=True,
                          text=True, timeout=600, check=False, preexec_fn=lambda: os.sched_setaffinity(0, cores))
    result = parse_result(done.stdout)
    if done.returncode != 0 or result is None:
        print(f"  outside: exit {done.returncode} {done.stderr[-300:]!r}")
        return None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--startup-rounds", type=int, default=10)
    parser.add_argument("--cpu-rounds", type=int, default=20)
    parser.add_argument("--hashes", type=int, default=2_000_000, help="SHA-256 digests per CPU round")
    args = parser.parse_args()
    problems = ProcessRuntime.problems()
    if problems:
        raise SystemExit("this host cannot run sandboxes: " + "; ".join(problems))
    runtime = ProcessRuntime()
    py = python3()
    root = Path(tempfile.mkdtemp(prefix="gridmint-sandbox-bench-"))
    lease_id = LEASE_BASE + (os.getpid() % 1000) * 100  # two runs at once do not share an id
    try:
        # One of each first, not counted: the page cache holds python and its modules for both sides after it.
        startup_outside(py)
        startup_inside(runtime, lease_id, root, py)
        inside: list[float] = []
        start_calls: list[float] = []
        outside: list[float] = []
        for _ in range(args.startup_rounds):
            lease_id += 1
            result = startup_inside(runtime, lease_id, root, py)
            if result is not None:
                inside.append(result[0])
                start_calls.append(result[1])
            baseline = startup_outside(py)
            if baseline is not None:
                outside.append(baseline)
        if not inside or not outside:
            raise SystemExit("no start-up round succeeded on one side")
        print(f"start-up to a port that accepts, {len(inside)}/{args.startup_rounds} sandboxed and "
              f"{len(outside)}/{args.startup_rounds} plain rounds:")
        print(f"  sandboxed lease   median {statistics.median(inside):7.1f} ms (min {min(inside):.1f}, max "
              f"{max(inside):.1f}); ProcessRuntime.start itself {statistics.median(start_calls):.1f} ms")
        print(f"  plain subprocess  median {statistics.median(outside):7.1f} ms (min {min(outside):.1f}, max "
              f"{max(outside):.1f})")

        # Every CPU lease id a multiple of the core count apart, so that the runtime (which rotates leases over
        # the cores by id) gives each the same core; the plain command runs on that core too, first in every other
        # pair, so that a slow minute of the machine weighs on both sides alike.
        lease_id += len(os.sched_getaffinity(0)) - lease_id % len(os.sched_getaffinity(0))
        cpu_in: list[float] = []
        cpu_out: list[float] = []
        cores: list[int] | None = None
        # Not counted: in the first runs the first busy seconds were slower on either side.
        cpu_outside(py, args.hashes // 2, sorted(os.sched_getaffinity(0)))
        for pair in range(args.cpu_rounds):
            lease_id += len(os.sched_getaffinity(0))
            plain = cpu_outside(py, args.hashes, cores) if cores is not None and pair % 2 else None
            sandboxed = cpu_inside(runtime, lease_id, root, py, args.hashes)
            if sandboxed is None or (cores is not None and sandboxed.cores != cores):
                print(f"  pair {pair}: not counted (sandboxed run failed or ran on other cores)")
                continue
            cores = sandboxed.cores
            if plain is None:
                plain = cpu_outside(py, args.hashes, cores)
            if plain is None or plain.digest != sandboxed.digest or plain.cores != cores:
                print(f"  pair {pair}: not counted (plain run failed, differed, or ran on other cores)")
                continue
            cpu_in.append(sandboxed.per_second)
            cpu_out.append(plain.per_second)
            print(f"  pair {pair}: sandboxed {sandboxed.per_second:,.0f}/s (CPU {sandboxed.cpu_s:.2f} s in "
                  f"{sandboxed.wall_s:.2f} s), plain {plain.per_second:,.0f}/s (CPU {plain.cpu_s:.2f} s in "
                  f"{plain.wall_s:.2f} s), {'plain' if pair % 2 else 'sandboxed'} first, core {cores}")
        if not cpu_in:
            raise SystemExit("no CPU round succeeded on both sides")
        ratio = statistics.median(cpu_in) / statistics.median(cpu_out)
        # The machine's speed drifts from second to second (other tenants of its host): each pair's own ratio,
        # taken a second apart, drifts less.
        pair_ratio = statistics.median(inside / outside for inside, outside in zip(cpu_in, cpu_out, strict=True))
        print(f"SHA-256 digests per second, one core, {len(cpu_in)}/{args.cpu_rounds} interleaved pairs of "
              f"{args.hashes:,}:")
        print(f"  sandboxed lease (cpu_millis 1000)  median {statistics.median(cpu_in):,.0f}/s")
        print(f"  plain, pinned to the same core     median {statistics.median(cpu_out):,.0f}/s")
        print(f"  median of each pair's ratio {pair_ratio:.3f}")
        print(f"  ratio {ratio:.3f} (goal >= 0.97); start-up {statistics.median(inside):.1f} ms (goal <= 300)")
        print(json.dumps({
            "startup_ms": round(statistics.median(inside), 1),
            "startup_baseline_ms": round(statistics.median(outside), 1),
            "startup_call_ms": round(statistics.median(start_calls), 1),
            "cpu_ratio": round(ratio, 4),
            "cpu_pair_ratio": round(pair_ratio, 4),
            "cpu_inside_per_s": round(statistics.median(cpu_in)),
            "cpu_outside_per_s": round(statistics.median(cpu_out)),
            "rounds": {"startup": len(inside), "startup_baseline": len(outside), "cpu": len(cpu_in)},
            "cores": cores,
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
