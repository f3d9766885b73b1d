"""Processes for gateway tests: `gridmint gateway run`, `gridmint miner run` and `gridmint validator run` on
loopback, beside a live subnet."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port, wait_healthy


@dataclass
class Process:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start(name: str, args: list[str], tmp_path: Path, port: int, env: dict[str, str] | None = None,
          module: str = "gridmint.cli.main") -> Process:
    """``python -m module *args`` with its output in ``<name>.log``, once its /health on ``port`` answers."""
    log_path = tmp_path / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])
    started = Process(name, f"http://127.0.0.1:{port}", process, log_path)
    wait_healthy(started.url, process, log_path, timeout_s=120)
    return started


_MINER_PORTS: dict[tuple[Path, str], int] = {}
_HANDED_OUT: set[int] = set()  # ports chosen in this process and maybe not bound yet


def unused_port() -> int:
    """A loopback port free now and not handed out before by this process: ports are chosen before the servers
    bind them, and two ``free_port()`` calls in a row can return the same one (a gateway once got the port chosen
    for a miner, whose health check then reached the gateway)."""
    while True:
        port = free_port()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def miner_port(tmp_path: Path, name: str) -> int:
    """The loopback port miner ``name`` of this test serves on, chosen once: a gateway started before the miner
    is told it (``--allow-endpoint``), as an operator lists exactly the miners it may reach on loopback."""
    if (tmp_path, name) not in _MINER_PORTS:
        _MINER_PORTS[(tmp_path, name)] = unused_port()
    return _MINER_PORTS[(tmp_path, name)]


def start_gateway(tmp_path: Path, wallet: str = "gw", *options: str, miners: Iterable[str] = ()) -> Process:
    allow = [arg for name in miners for arg in ("--allow-endpoint", f"127.0.0.1:{miner_port(tmp_path, name)}")]
    port = unused_port()
    return start("gateway", ["gateway", "run", "--wallet", wallet, "--port", str(port), "--data-dir",
                             str(tmp_path / "gateway-data"), "--sync-seconds", "0.5", "--settle-seconds", "1",
                             *allow, *options], tmp_path, port)


def start_miner(tmp_path: Path, name: str, netuid: int, backend: str, price: str = "0.001",
                *options: str) -> Process:
    port = miner_port(tmp_path, name)
    return start(name, ["miner", "run", "--netuid", str(netuid), "--backend", backend, "--wallet", name, "--port",
                        str(port), "--sync-seconds", "0.5", "--price", price, *options], tmp_path, port)


def start_validator(tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> Process:
    """`gridmint validator run` on subnet 1 with the wallet ``val`` (it serves nothing: no URL to wait for)."""
    log_path = tmp_path / "validator.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", "validator", "run", "--netuid", "1",
                                    "--wallet", "val", *options], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
    return Process("validator", "", process, log_path)


def wait_for_miners(gateway: Process, count: int, timeout_s: float = 60) -> None:
    """Until the gateway's directory holds ``count`` miners."""
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{gateway.url}/health", timeout=5).json()["miners"] < count:
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.2)


def wait_for_models(gateway: Process, *models: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = httpx.get(f"{gateway.url}/v1/models", timeout=5).json()["data"]
        if all(any(entry["id"] == model for entry in listed) for model in models):
            return list(listed)
        time.sleep(0.2)
    raise AssertionError(f"the gateway never listed {models}:\n{gateway.log()}")


def ledger_rows(tmp_path: Path) -> list[tuple[str, str, int, int | None, str]]:
    """(consumer, miner hotkey, grains, batch, batch state) of every metered request, from the gateway's own ledger;
    the state is "settled" once the chain confirmed the batch (the gateway marks it after the block landed)."""
    with sqlite3.connect(tmp_path / "gateway-data" / "gateway.db") as db:
        return [(c, m, int(g), b, s or "unsettled") for c, m, g, b, s in db.execute(
            "SELECT m.consumer, m.miner, m.grains, m.batch, b.state FROM metered m "
            "LEFT JOIN settle_batches b ON b.id = m.batch")]


def wait_until_settled(tmp_path: Path, rows: int, gateway: Process, timeout_s: float = 60) -> None:
    """Until the gateway's ledger holds ``rows`` metered rows, each in a batch the chain confirmed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = ledger_rows(tmp_path)
        if len(found) == rows and all(state == "settled" for *_, state in found):
            return
        time.sleep(0.2)
    raise AssertionError(f"{rows} metered rows were not settled: {ledger_rows(tmp_path)}\n{gateway.log()[-3000:]}")
