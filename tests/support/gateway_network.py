"""Processes for gateway tests: `gridmint gateway run`, `gridmint miner run` and `gridmint validator run` on
loopback, beside a live subnet, and the gateway's ledger as they leave it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import unused_port
from tests.support.processes import LoggedProcess, spawn, start_server
from tests.support.waiting import wait_for

_MINER_PORTS: dict[tuple[Path, str], int] = {}


def miner_port(tmp_path: Path, name: str) -> int:
    """The loopback port miner ``name`` of this test serves on, chosen once: a gateway started before the miner
    is told it (``--allow-endpoint``), as an operator lists exactly the miners it may reach on loopback."""
    if (tmp_path, name) not in _MINER_PORTS:
        _MINER_PORTS[(tmp_path, name)] = unused_port()
    return _MINER_PORTS[(tmp_path, name)]


def start_gateway(tmp_path: Path, wallet: str = "gw", *options: str, miners: Iterable[str] = ()) -> LoggedProcess:
    allow = [arg for name in miners for arg in ("--allow-endpoint", f"127.0.0.1:{miner_port(tmp_path, name)}")]
    port = unused_port()
    return start_server("gateway", ["gateway", "run", "--wallet", wallet, "--port", str(port), "--data-dir",
                                    str(tmp_path / "gateway-data"), "--sync-seconds", "0.5", "--settle-seconds", "1",
                                    *allow, *options], tmp_path, port)


def start_miner(tmp_path: Path, name: str, netuid: int, backend: str, price: str = "0.001",
                *options: str) -> LoggedProcess:
    port = miner_port(tmp_path, name)
    return start_server(name, ["miner", "run", "--netuid", str(netuid), "--backend", backend, "--wallet", name,
                               "--port", str(port), "--sync-seconds", "0.5", "--price", price, *options],
                        tmp_path, port)


def start_validator(tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> LoggedProcess:
    """`gridmint validator run` on subnet 1 with the wallet ``val`` (it serves nothing: no URL to wait for)."""
    return spawn("validator", ["validator", "run", "--netuid", "1", "--wallet", "val", *options], tmp_path, env)


def wait_for_miners(gateway: LoggedProcess, count: int, timeout_s: float = 60) -> None:
    """Until the gateway's directory holds ``count`` miners."""
    wait_for(lambda: httpx.get(f"{gateway.url}/health", timeout=5).json()["miners"] >= count,
             f"the gateway to know {count} miners", timeout_s, interval_s=0.2, detail=gateway.log)


def wait_for_models(gateway: LoggedProcess, *models: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """The gateway's model list, once it names every one of ``models``."""
    def listing_all() -> list[dict[str, Any]] | None:
        listed: list[dict[str, Any]] = httpx.get(f"{gateway.url}/v1/models", timeout=5).json()["data"]
        return listed if all(any(entry["id"] == model for entry in listed) for model in models) else None

    return wait_for(listing_all, f"the gateway to list {models}", timeout_s, interval_s=0.2,  # type: ignore[no-any-return]
                    detail=gateway.log)


def ledger_rows(tmp_path: Path) -> list[tuple[str, str, int, int | None, str]]:
    """(consumer, miner hotkey, grains, batch, batch state) of every metered request, from the gateway's own ledger;
    the state is "settled" once the chain confirmed the batch (the gateway marks it after the block landed)."""
    with sqlite3.connect(tmp_path / "gateway-data" / "gateway.db") as db:
        return [(c, m, int(g), b, s or "unsettled") for c, m, g, b, s in db.execute(
            "SELECT m.consumer, m.miner, m.grains, m.batch, b.state FROM metered m "
            "LEFT JOIN settle_batches b ON b.id = m.batch")]


def wait_until_settled(tmp_path: Path, rows: int, gateway: LoggedProcess, timeout_s: float = 60) -> None:
    """Until the gateway's ledger holds ``rows`` metered rows, each in a batch the chain confirmed."""
    def all_settled() -> bool:
        found = ledger_rows(tmp_path)
        return len(found) == rows and all(state == "settled" for *_, state in found)

    wait_for(all_settled, f"{rows} metered rows to be settled", timeout_s, interval_s=0.2,
             detail=lambda: f"{ledger_rows(tmp_path)}\n{gateway.log()[-3000:]}")
