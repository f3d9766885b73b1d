"""State sync with real CometBFT processes on loopback: a node made by `gridmint node init --genesis <a node's
/genesis URL> --trust-rpc …` and started by `gridmint node start` restores a snapshot of the running network,
starts its block store at the height after it (no replay from height 1), and its app hash equals the network's at
every height from there. (tests/multihost runs the same across network namespaces, where the machine allows.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridmint.node.network import init_network, node_status, start_network, stop_network
from gridmint.node.processes import stop_process_group
from tests.support.ports import free_port_range
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cometbft")]

INTERVAL = 100  # long enough at ~10 blocks a second that a snapshot outlives a fetch (each node keeps two)
FAST = [("p2p", "flush_throttle_timeout", '"10ms"'), ("consensus", "peer_gossip_sleep_duration", '"10ms"')]


def _rpc(url: str, method: str, **params: Any) -> Any:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                      timeout=5).json()["result"]


def _app_hashes(url: str, low: int, high: int) -> list[str]:
    return [_rpc(url, "block", height=str(h))["block"]["header"]["app_hash"] for h in range(low, high + 1)]


def _at_head(url: str) -> bool:
    """The node at ``url`` answers, has blocks and has stopped catching up."""
    try:
        sync = _rpc(url, "status")["sync_info"]
    except (httpx.HTTPError, KeyError, ValueError):
        return False  # not listening yet
    return not sync["catching_up"] and int(sync["latest_block_height"]) > 0


def test_a_new_node_joins_by_state_sync_with_the_networks_app_hashes(tmp_path: Path) -> None:
    base = free_port_range(120)
    nodes = init_network(tmp_path / "net", 4, "gridmint-net", [], base, "20ms", snapshot_interval=INTERVAL,
                         settings=FAST)
    start_network(tmp_path / "net")
    joiner: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: min(node_status(n).get("height", 0) for n in nodes) >= 2 * INTERVAL + 3, "two snapshots",
                 120)
        urls = [f"http://127.0.0.1:{n.rpc_port}" for n in nodes]
        home = tmp_path / "joiner"
        peers = ",".join(f"{n.node_id}@127.0.0.1:{n.p2p_port}" for n in nodes)
        init = subprocess.run(
            [sys.executable, "-m", "gridmint.cli.main", "--json", "node", "init", "--data-dir", str(home),
             "--genesis", f"{urls[0]}/genesis", "--peers", peers, "--p2p-laddr", f"127.0.0.1:{base + 100}",
             "--rpc-laddr", f"127.0.0.1:{base + 101}", "--trust-rpc", urls[0], "--trust-rpc", urls[1],
             "--allow-private-addresses", "--config", "p2p.allow_duplicate_ip=true",
             "--config", 'statesync.discovery_time="5s"'], capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stdout + init.stderr
        assert json.loads(init.stdout)["state_sync"]["trust_height"] >= 2 * INTERVAL
        with (tmp_path / "joiner.log").open("wb") as log:
            joiner = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir",
                                       str(home), "--snapshot-interval", str(INTERVAL)], stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        mine = f"http://127.0.0.1:{base + 101}"
        wait_for(lambda: _at_head(mine), "the joiner at the head", 120)
        first = int(_rpc(mine, "status")["sync_info"]["earliest_block_height"])
        assert first > 1 and (first - 1) % INTERVAL == 0, first  # from a snapshot, not from genesis
        top = int(_rpc(mine, "status")["sync_info"]["latest_block_height"])
        assert _app_hashes(mine, first, top) == _app_hashes(urls[2], first, top)
        # It takes snapshots of its own once it runs: a node that joined by state sync can serve the next one.
        wait_for(lambda: any((home / "app" / "snapshots").glob("*/manifest.json")), "the joiner's own snapshot", 60)
    finally:
        if joiner is not None:
            stop_process_group(joiner.pid, 15)
        stop_network(tmp_path / "net")
