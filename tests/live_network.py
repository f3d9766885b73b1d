"""A real devnode with one subnet, driven through the CLI: owner, a validator with a permit, a registered miner."""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gridmint.cli.main import cli
from gridmint.client.wallet import create_wallet
from gridmint.node.network import init_network, node_status, start_network, stop_network
from tests.helpers import CHAIN_ID, MINT, DevnodeProcess, write_data_dir

FAST_KDF = {"opslimit": 1, "memlimit": 65_536}


@dataclass
class LiveSubnet:
    node: DevnodeProcess | CometNetwork
    wallets: Path
    runner: CliRunner

    def run(self, *args: str) -> Any:
        result = self.runner.invoke(cli, ["--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def metagraph(self) -> dict[str, Any]:
        return self.run("subnet", "metagraph", "1")  # type: ignore[no-any-return]

    def wait_for(self, condition: Any, what: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            graph = self.metagraph()
            if condition(graph):
                return graph
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


class CometNetwork:
    """A started 4-authority CometBFT network, used where a test takes a DevnodeProcess (``url``, ``stop``)."""

    def __init__(self, directory: Path, balances: list[tuple[str, int]], sections: dict[str, Any]) -> None:
        self.directory = directory
        self.nodes = init_network(directory, 4, CHAIN_ID, balances, free_port_range(), "200ms", sections=sections)
        self.url = f"http://127.0.0.1:{self.nodes[0].rpc_port}"
        start_network(directory)
        deadline = time.monotonic() + 60
        while not all(node_status(n).get("height", 0) >= 2 for n in self.nodes):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the CometBFT network made no blocks")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_network(self.directory)


def free_port_range(width: int = 40) -> int:
    """A base port with the ``width`` ports after it free on loopback, below the kernel's ephemeral range: the
    services get their ports well after this check, and a port inside that range can meanwhile become the source
    port of any outgoing connection on the machine (a miner of `gridmint up` once failed to bind that way)."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = random.randrange(20_000, ephemeral_low - width) // 100 * 100
        try:
            for offset in range(width):
                with socket.socket() as check:
                    check.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


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


@contextmanager
def live_subnet(tmp_path: Path, monkeypatch: Any, names: tuple[str, ...] = ("owner", "val", "miner"),
                tempo: int = 5, modality: str = "text-generation", permit: bool = True,
                others: tuple[str, ...] = (), kind: str = "devnode", credit: dict[str, Any] | None = None
                ) -> Iterator[LiveSubnet]:
    """``names[0]`` owns subnet 1, ``names[1]`` validates on it, the rest are registered miners; ``others`` are
    funded wallets that are not registered. ``credit`` is the credit module's genesis section, if not the default."""
    node, wallets = funded_devnode(tmp_path, names + others, kind=kind,
                                   subnets={"params": {"default_tempo": tempo, "min_lock": 100 * MINT}},
                                   **({"credit": credit} if credit else {}))
    monkeypatch.setenv("GRIDMINT_WALLET_DIR", str(wallets))
    monkeypatch.setenv("GRIDMINT_NODE", node.url)
    monkeypatch.setenv("GRIDMINT_PASSWORD", "pw")
    live = LiveSubnet(node, wallets, CliRunner())
    try:
        live.run("subnet", "create", "--modality", modality, "--name", "live", "--wallet", "owner")
        for name in names[1:]:
            live.run("subnet", "register", "1", "--wallet", name)
        live.run("stake", "add", "1", "val/default", "500", "--wallet", "val")
        if permit:  # permits come with the first epoch
            live.wait_for(lambda g: g["uids"][0]["permit"] == 1, "a validator permit")
        yield live
    finally:
        node.stop()


def fees_paid(client: Any, address: str, after: int, upto: int) -> int:
    """Grains of fees ``address`` paid in blocks ``after + 1 .. upto`` (from the blocks' ``fee`` events): a fee
    depends on what a transaction does (chain/fees.py), so tests that balance accounts add up what was paid."""
    total = 0
    for height in range(after + 1, upto + 1):
        for result in client.call("block_results", height=str(height)).get("txs_results") or []:
            for event in result.get("events") or []:
                attributes = {a["key"]: a["value"] for a in event["attributes"]}
                if event["type"] == "fee" and attributes.get("payer") == address:
                    total += int(attributes["amount"])
    return total
