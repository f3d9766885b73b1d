"""A real devnode with one subnet, driven through the CLI: owner, a validator with a permit, a registered miner."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gridmint.cli.main import cli
from gridmint.client.wallet import create_wallet
from tests.helpers import MINT, DevnodeProcess, write_data_dir

FAST_KDF = {"opslimit": 1, "memlimit": 65_536}


@dataclass
class LiveSubnet:
    node: DevnodeProcess
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


def funded_devnode(tmp_path: Path, names: tuple[str, ...], block_time: float = 0.05,
                   **sections: Any) -> tuple[DevnodeProcess, Path]:
    """A started devnode whose genesis funds each named wallet's coldkey and default hotkey (10,000 MINT each);
    ``sections`` replace app_state sections of the genesis."""
    wallets = tmp_path / "wallets"
    funded = []
    for name in names:
        wallet, _ = create_wallet(name, "pw", wallets, **FAST_KDF)
        funded += [wallet.address, wallet.hotkey_address("default")]
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
                others: tuple[str, ...] = ()) -> Iterator[LiveSubnet]:
    """``names[0]`` owns subnet 1, ``names[1]`` validates on it, the rest are registered miners; ``others`` are
    funded wallets that are not registered."""
    node, wallets = funded_devnode(tmp_path, names + others, subnets={"params": {"default_tempo": tempo,
                                                                                 "min_lock": 100 * MINT}})
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
