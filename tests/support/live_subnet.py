"""A live subnet driven through the CLI on a real devnode (or CometBFT network): owner, a validator with a permit,
registered miners; and the fees an account paid, for tests that balance accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gridmint.cli.main import cli
from tests.support.chain import MINT
from tests.support.nodes import CometNetwork, DevnodeProcess, funded_devnode
from tests.support.waiting import wait_for


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
        """The first metagraph of subnet 1 that satisfies ``condition``."""
        def satisfying() -> dict[str, Any] | None:
            graph = self.metagraph()
            return graph if condition(graph) else None

        return wait_for(satisfying, what, timeout_s)  # type: ignore[no-any-return]


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
