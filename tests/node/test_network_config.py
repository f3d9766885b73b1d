"""`gridmint net init` writes the RPC limits into each CometBFT node's config.toml, under CometBFT's own keys
(read back by a TOML parser, as CometBFT reads them)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from websockets.sync.client import connect

from gridmint.cli.main import cli
from gridmint.node.limits import RPCLimits
from gridmint.node.network import find_cometbft, init_network
from tests.support.ports import free_port_range
from tests.support.waiting import wait_healthy


def _rpc_section(home: str | Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((Path(home) / "config" / "config.toml").read_text())["rpc"]  # type: ignore[no-any-return]


def test_net_init_writes_the_rpc_limits_into_every_node(tmp_path: Path) -> None:
    limits = RPCLimits(max_body_bytes=2_000_000, max_header_bytes=65_536, max_request_batch_size=50,
                       max_open_connections=300, max_subscription_clients=20, max_subscriptions_per_client=3,
                       timeout_broadcast_tx_commit_s=7)
    nodes = init_network(tmp_path / "net", 2, "gridmint-net", [], free_port_range(), rpc_limits=limits)
    for node in nodes:
        rpc = _rpc_section(node.home)
        assert {key: rpc[key] for key in ("max_body_bytes", "max_header_bytes", "max_request_batch_size",
                                          "max_open_connections", "max_subscription_clients",
                                          "max_subscriptions_per_client", "timeout_broadcast_tx_commit")} == {
            "max_body_bytes": 2_000_000, "max_header_bytes": 65_536, "max_request_batch_size": 50,
            "max_open_connections": 300, "max_subscription_clients": 20, "max_subscriptions_per_client": 3,
            "timeout_broadcast_tx_commit": "7s"}
        assert rpc["laddr"] == f"tcp://127.0.0.1:{node.rpc_port}"  # the rest of the section as before


def test_the_default_limits_are_the_ones_cometbft_writes_itself(tmp_path: Path) -> None:
    subprocess.run([find_cometbft(), "init", "--home", str(tmp_path / "plain")], check=True, capture_output=True)
    own = _rpc_section(tmp_path / "plain")
    for key, value in RPCLimits().cometbft_config():
        assert own[key] == tomllib.loads(f"v = {value}")["v"], key


def test_net_init_takes_limits_on_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["net", "init", "--authorities", "1", "--dir", str(tmp_path / "net"),
                                      "--base-port", str(free_port_range()),
                                      "--rpc-limit", "max_request_batch_size=25"])
    assert result.exit_code == 0, result.output
    rpc = _rpc_section(tmp_path / "net" / "node0")
    assert (rpc["max_request_batch_size"], rpc["max_body_bytes"]) == (25, RPCLimits().max_body_bytes)
    refused = CliRunner().invoke(cli, ["net", "init", "--dir", str(tmp_path / "other"),
                                       "--rpc-limit", "max_request_batch_size=0"])
    assert refused.exit_code == 1 and "max_request_batch_size must be a whole number of at least 1" in refused.output
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("cometbft")
def test_cometbft_enforces_the_limits_net_init_writes(tmp_path: Path) -> None:
    """CometBFT itself refuses what the devnode refuses, from the config.toml that net init wrote (its built-in
    kvstore app stands in for ours: the limits sit in CometBFT's RPC, before any app)."""
    limits = RPCLimits(max_request_batch_size=3, max_subscriptions_per_client=1, max_body_bytes=5_000)
    (node,) = init_network(tmp_path / "net", 1, "gridmint-net", [], free_port_range(), rpc_limits=limits)
    log = (Path(node.home) / "cometbft.log").open("wb")
    process = subprocess.Popen([find_cometbft(), "start", "--home", node.home, "--proxy_app=kvstore"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{node.rpc_port}"
    try:
        wait_healthy(url, process, Path(node.home) / "cometbft.log", timeout_s=30)
        health = {"jsonrpc": "2.0", "method": "health", "params": {}}
        refused = httpx.post(url, json=[{**health, "id": i} for i in range(4)]).json()["error"]
        assert refused["code"] == -32600 and "exceeds maximum (3)" in refused["data"]
        assert len(httpx.post(url, json=[{**health, "id": i} for i in range(3)]).json()) == 3
        too_big = httpx.post(url, content=b" " * 5_001)
        assert too_big.json()["error"]["code"] == -32600 and "too large" in too_big.json()["error"]["data"]
        with connect(url.replace("http", "ws") + "/websocket", open_timeout=10) as socket:
            for request_id in (1, 2):
                socket.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "subscribe",
                                        "params": {"query": f"tm.event = 'NewBlock' AND block.height = {request_id}"}}))
            answers = [json.loads(socket.recv(timeout=10)) for _ in range(2)]
            assert answers[0]["result"] == {}
            assert answers[1]["error"]["data"] == "max_subscriptions_per_client 1 reached"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_nodes_on_hosts_of_their_own_listen_everywhere_and_are_dialled_at_their_host(tmp_path: Path) -> None:
    hosts = ["10.213.7.1", "10.213.7.2", "10.213.7.3"]
    nodes = init_network(tmp_path / "net", 2, "gridmint-net", [], 26656, full_nodes=1, hosts=hosts,
                         snapshot_interval=50, settings=[("p2p", "flush_throttle_timeout", '"10ms"')])
    manifest = json.loads((tmp_path / "net" / "network.json").read_text())["nodes"]
    assert [(n["host"], n["snapshot_interval"]) for n in manifest] == [(h, 50) for h in hosts]
    for node in nodes:
        config = tomllib.loads((Path(node.home) / "config" / "config.toml").read_text())
        assert config["rpc"]["laddr"] == "tcp://0.0.0.0:26657" and config["p2p"]["laddr"] == "tcp://0.0.0.0:26656"
        assert config["p2p"]["external_address"] == f"{node.host}:26656"
        assert config["p2p"]["flush_throttle_timeout"] == "10ms"
        peers = config["p2p"]["persistent_peers"].split(",")
        assert sorted(peers) == sorted(f"{other.node_id}@{other.host}:26656" for other in nodes if other is not node)
    # On one machine (no hosts), nothing listens beyond loopback.
    local = init_network(tmp_path / "local", 1, "gridmint-net", [], free_port_range())
    config = tomllib.loads((Path(local[0].home) / "config" / "config.toml").read_text())
    assert config["rpc"]["laddr"].startswith("tcp://127.0.0.1:") and config["p2p"]["external_address"] == ""
