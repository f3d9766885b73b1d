"""Running nodes for tests that need sockets, signals or restarts: a devnode process on a loopback port, a started
4-authority CometBFT network, and a devnode (or network) whose genesis funds named wallets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from gridmint.chain.crypto import format_address
from gridmint.chain.genesis import make_genesis_document, write_genesis
from gridmint.client.wallet import create_wallet
from gridmint.node.devnode import write_node_key
from gridmint.node.network import init_network, node_status, start_network, stop_network
from gridmint.ports import free_port
from tests.support.chain import CHAIN_ID, GENESIS_TIME, MIN_TX_FEE, MINT, START_BALANCE, key
from tests.support.ports import free_port_range
from tests.support.waiting import wait_for

FAST_KDF = {"opslimit": 1, "memlimit": 65_536}  # wallets that open in milliseconds: tests make many


def write_data_dir(data_dir: Path, accounts: tuple[str, ...] = ("alice", "bob")) -> None:
    """A devnode data directory whose authority is ``key("authority-0")`` and whose accounts are funded."""
    data_dir.mkdir(parents=True, exist_ok=True)
    write_node_key(data_dir, key("authority-0").seed)
    document = make_genesis_document(
        CHAIN_ID, GENESIS_TIME, [("authority-0", key("authority-0").public_key)],
        [(format_address(key(name).address), START_BALANCE) for name in accounts], min_tx_fee=MIN_TX_FEE)
    write_genesis(data_dir / "genesis.json", document)


class DevnodeProcess:
    """A real devnode process on a loopback port, for tests that need sockets, signals or restarts."""

    def __init__(self, data_dir: Path, block_time: float = 0.2, rpc_limits: tuple[str, ...] = ()) -> None:
        """``rpc_limits``: ``NAME=VALUE`` settings for ``--rpc-limit``."""
        self.data_dir = data_dir
        self.block_time = block_time
        self.rpc_limits = rpc_limits
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait for its first block (or only for an answer, when it makes blocks on demand)."""
        log = (self.data_dir / "devnode.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir", str(self.data_dir),
             "--block-time", str(self.block_time), "--rpc-laddr", f"127.0.0.1:{self.port}",
             *[argument for limit in self.rpc_limits for argument in ("--rpc-limit", limit)]],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._has_started, "the devnode to answer", timeout_s=timeout, interval_s=0.05)

    def _has_started(self) -> bool:
        import httpx  # only the tests that start a devnode pay for the import

        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"devnode exited with {self.process.returncode}: "
                               f"{(self.data_dir / 'devnode.log').read_text()[-2000:]}")
        try:
            answer = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "status"}, timeout=2)
            return int(answer.json()["result"]["sync_info"]["latest_block_height"]) >= 1 or self.block_time == 0
        except (httpx.HTTPError, KeyError, ValueError):
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class CometNetwork:
    """A started 4-authority CometBFT network, used where a test takes a DevnodeProcess (``url``, ``stop``)."""

    def __init__(self, directory: Path, balances: list[tuple[str, int]], sections: dict[str, Any]) -> None:
        self.directory = directory
        self.nodes = init_network(directory, 4, CHAIN_ID, balances, free_port_range(), "200ms", sections=sections)
        self.url = f"http://127.0.0.1:{self.nodes[0].rpc_port}"
        start_network(directory)
        try:
            wait_for(lambda: all(node_status(n).get("height", 0) >= 2 for n in self.nodes),
                     "the CometBFT network to make blocks", timeout_s=60, interval_s=0.2)
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        stop_network(self.directory)


def funded_devnode(tmp_path: Path, names: tuple[str, ...], block_time: float = 0.05, kind: str = "devnode",
                   **sections: Any) -> tuple[DevnodeProcess | CometNetwork, Path]:
    """A started devnode (or, with ``kind="cometbft"``, a 4-authority CometBFT network) whose genesis funds each
    named wallet's coldkey and default hotkey (10,000 MINT each); ``sections`` replace app_state sections."""
    wallets = tmp_path / "wallets"
    funded = []
    for name in names:
        wallet, _ = create_wallet(name, "pw", wallets, **FAST_KDF)
        funded += [wallet.address, wallet.hotkey_address("default")]
    if kind == "cometbft":
        return CometNetwork(tmp_path / "net", [(a, 10_000 * MINT) for a in funded], sections), wallets
    data_dir = tmp_path / "node"
    write_data_dir(data_dir, accounts=())
    genesis = json.loads((data_dir / "genesis.json").read_text())
    genesis["app_state"]["bank"]["balances"] = [{"address": a, "amount": 10_000 * MINT} for a in funded]
    genesis["app_state"].update(sections)
    (data_dir / "genesis.json").write_text(json.dumps(genesis))
    node = DevnodeProcess(data_dir, block_time=block_time)
    node.start()
    return node, wallets
