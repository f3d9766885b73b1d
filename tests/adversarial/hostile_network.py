"""A real 4-authority CometBFT network for the attack catalogue, and the checks that every attack ends with.

After each attack the network must be as healthy as before it: every node still running, blocks still coming on
every node, the same app hash on every node at every height since the attack began, and each app process within
``APP_MEMORY_BOUND_BYTES`` of resident memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.client.chain_client import ChainClient
from gridmint.node.network import NodeSpec, init_network, node_status, start_network, stop_network
from tests.support.chain import CHAIN_ID, MINT, key
from tests.support.ports import free_port_range
from tests.support.waiting import wait_for

# An app process starts at ~90 MB (Python, numpy, libsodium, SQLite). The cache of verified transactions is
# bounded in bytes and every other structure by the chain's limits; 400 MB leaves room for those and for
# SQLite's page cache, and is far below what the unbounded cache reached (~550 MB after 5,000 refused
# transactions, ~11 GB at its entry limit).
APP_MEMORY_BOUND_BYTES = 400 * 2**20
ATTACKER = key("attacker")  # funded: pays for what it sends
UNFUNDED = key("unfunded")  # never funded: everything it signs is refused
AUTHORITY_TIMEOUT_S = 60


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"process {pid} reports no resident memory")


@dataclass
class HostileNetwork:
    """A started network and what its attackers hold."""

    directory: Path
    nodes: list[NodeSpec] = field(default_factory=list)

    def start(self, funded: list[PrivateKey], sections: dict[str, Any]) -> None:
        balances = [(format_address(k.address), 100_000 * MINT) for k in funded]
        self.nodes = init_network(self.directory, 4, CHAIN_ID, balances, free_port_range(), "200ms",
                                  sections=sections)
        start_network(self.directory)
        self.wait_for_height(2)

    def stop(self) -> None:
        stop_network(self.directory)

    def url(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.nodes[index].rpc_port}"

    def client(self, index: int = 0) -> ChainClient:
        return ChainClient(self.url(index))

    def app_pid(self, node: NodeSpec) -> int:
        return int(json.loads((Path(node.home) / "pids.json").read_text())["app"])

    def heights(self) -> list[int]:
        return [int(node_status(node).get("height", -1)) for node in self.nodes]

    def wait_for_height(self, height: int, timeout_s: float = AUTHORITY_TIMEOUT_S) -> None:
        wait_for(lambda: min(self.heights()) >= height, f"every node to reach height {height}", timeout_s,
                 interval_s=0.2, detail=lambda: f"heights {self.heights()}")

    def rpc(self, method: str, params: dict[str, Any] | None = None, index: int = 0) -> dict[str, Any]:
        answer = httpx.post(self.url(index), json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                   "params": params or {}}, timeout=30)
        return answer.json()  # type: ignore[no-any-return]

    def assert_healthy(self, since: int) -> None:
        """What every attack must leave behind: all nodes up, blocks coming, equal app hashes since ``since``,
        and each app's memory under the bound."""
        statuses = [node_status(node) for node in self.nodes]
        down = [s["node"] for s in statuses if not s["running"]]
        assert not down, f"nodes stopped answering: {down}"
        top = max(int(s["height"]) for s in statuses)
        self.wait_for_height(top + 2)  # every node, not just one, keeps committing
        self.assert_same_app_hashes(max(since, 2), top + 1)
        for node in self.nodes:
            resident = rss_bytes(self.app_pid(node))
            assert resident < APP_MEMORY_BOUND_BYTES, \
                f"the app of {node.name} holds {resident / 2**20:.0f} MB, over {APP_MEMORY_BOUND_BYTES / 2**20:.0f}"

    def assert_same_app_hashes(self, start: int, end: int) -> None:
        """Every node's header at each height in [start, end] names the same app hash (the app hash of the
        block before it); every height is compared, 20 headers a call (CometBFT's ``blockchain``)."""
        for low in range(start, end + 1, 20):
            high = min(low + 19, end)
            per_node = []
            for index in range(len(self.nodes)):
                answer = self.rpc("blockchain", {"minHeight": str(low), "maxHeight": str(high)}, index)
                hashes = {int(meta["header"]["height"]): meta["header"]["app_hash"]
                          for meta in answer["result"]["block_metas"]}
                assert sorted(hashes) == list(range(low, high + 1)), \
                    f"{self.nodes[index].name} lacks headers of {low}..{high}: has {sorted(hashes)}"
                per_node.append(hashes)
            split = [height for height in range(low, high + 1) if len({h[height] for h in per_node}) != 1]
            assert not split, f"nodes disagree on the app hash at heights {split}"


def abci_query(network: HostileNetwork, path: str, height: int | str | None = None, data: bytes = b"",
               index: int = 0) -> dict[str, Any]:
    """``abci_query`` over CometBFT's JSON-RPC; returns the JSON-RPC answer as sent (result or error)."""
    params: dict[str, Any] = {"path": path, "data": data.hex()}
    if height is not None:
        params["height"] = str(height)
    return network.rpc("abci_query", params, index)


def is_coded_refusal(response: dict[str, Any]) -> bool:
    """An ABCI query response that refuses with a stable code: non-zero code, a codespace and a sentence."""
    return int(response.get("code", 0)) != 0 and bool(response.get("codespace")) and bool(response.get("log"))
