"""Hosts joining a running network (issue 18, must-show 1), each host a network namespace of this test's own.

Four authorities, each on a host of its own (app and CometBFT started by `gridmint node start`), run past 1,000
blocks with a subnet whose validator sets weights, a market lease streaming escrow and an open credit line. A fifth
host joins with `gridmint node init --genesis http://…/genesis --peers … --trust-rpc …` and `node start`: it
restores a snapshot (no replay from height 1) and its app hash equals the network's at every height from its
first synced one. The authorities vote it in and it signs blocks. One authority's link is cut and blocks go on; a
2|2 partition of the rest halts the chain without a fork, and blocks resume once it heals.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridmint.chain.authority import MsgPropose, MsgVote
from gridmint.chain.bank import MsgSend
from gridmint.chain.credit import MsgOpenCredit, MsgRegisterGateway
from gridmint.chain.crypto import format_address
from gridmint.chain.market import MsgAcceptBid, MsgBid, MsgCreateDeployment, MsgRegisterProvider
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.weights import MsgSetWeights
from gridmint.client.chain_client import ChainClient
from gridmint.node.network import NodeSpec, init_network, validator_key
from tests.multihost.hosts import Hosts, can_make_hosts
from tests.support.chain import key
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cometbft"),
              pytest.mark.skipif(not can_make_hosts(), reason="needs root and iproute2 (network namespaces)")]

MINT = 10**9
CHAIN_ID = "gridmint-hosts"
BLOCKS = 1_000
SNAPSHOT_INTERVAL = 200
P2P_PORT, RPC_PORT = 26656, 26657
# Local-network speed: CometBFT's 100 ms flush throttle and gossip sleep, not the commit timeout, pace blocks here.
FAST = [("p2p", "flush_throttle_timeout", '"10ms"'), ("consensus", "peer_gossip_sleep_duration", '"10ms"'),
        ("consensus", "timeout_propose", '"1s"')]
ACCOUNTS = ("owner", "val", "val/hot", "m1", "m2", "gw", "c1", "p1", "t1", "payer")
SECTIONS: dict[str, Any] = {
    "subnets": {"params": {"min_lock": 10 * MINT, "default_tempo": 20}},
    "credit": {"params": {"min_bond": MINT, "max_duration": 100_000}},
    "market": {"params": {"min_bond": MINT, "order_ttl": 100_000}},
}
LEASE_PRICE = MINT // 1_000  # grains per block: the deposit below lasts 20,000 blocks


def _node_command(home: str) -> list[str]:
    return [sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir", home,
            "--snapshot-interval", str(SNAPSHOT_INTERVAL), "--log-level", "warning"]


class Network:
    """The hosts and what runs on them; every RPC is asked from inside the host that serves it."""

    def __init__(self, hosts: Hosts, nodes: list[NodeSpec], folder: Path) -> None:
        self.hosts = hosts
        self.nodes = nodes
        self.folder = folder

    def rpc(self, index: int, method: str, **params: Any) -> Any:
        def ask() -> Any:
            answer = httpx.post(f"http://127.0.0.1:{RPC_PORT}", timeout=5,
                                json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
            return answer["result"]
        return self.hosts.call(index, ask)

    def height(self, index: int) -> int:
        try:
            return int(self.rpc(index, "status")["sync_info"]["latest_block_height"])
        except (httpx.HTTPError, KeyError, ValueError):
            return 0

    def client(self, index: int, work: Callable[[ChainClient], Any]) -> Any:
        def run() -> Any:
            with ChainClient(f"http://127.0.0.1:{RPC_PORT}") as client:
                return work(client)
        return self.hosts.call(index, run)

    def headers(self, index: int, low: int, high: int) -> dict[int, dict[str, Any]]:
        """Block headers ``low..high`` of host ``index``, 20 to a request."""
        found: dict[int, dict[str, Any]] = {}
        for start in range(low, high + 1, 20):
            metas = self.rpc(index, "blockchain", minHeight=str(start), maxHeight=str(min(high, start + 19)))
            for meta in metas["block_metas"]:
                found[int(meta["header"]["height"])] = {"app_hash": meta["header"]["app_hash"],
                                                        "hash": meta["block_id"]["hash"]}
        return found

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
        wait_for(condition, what, timeout_s, interval_s=0.3,
                 detail=lambda: f"heights {[self.height(i) for i in range(5)]}")


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    hosts = Hosts(5)
    try:
        balances = [(format_address(key(name).address), 100_000 * MINT) for name in ACCOUNTS]
        nodes = init_network(tmp_path / "net", 4, CHAIN_ID, balances, P2P_PORT, "10ms", sections=SECTIONS,
                             snapshot_interval=SNAPSHOT_INTERVAL, hosts=[hosts.address(i) for i in range(4)],
                             settings=FAST)
        for index, node in enumerate(nodes):
            hosts.spawn(index, _node_command(node.home), Path(node.home) / "node.log")
        net = Network(hosts, nodes, tmp_path)
        net.wait(lambda: all(net.height(i) >= 2 for i in range(4)), "the first blocks")
        yield net
    finally:
        hosts.close()


def _set_up_workload(client: ChainClient) -> dict[str, int]:
    """A subnet with a staked validator and two miners, a provider's lease and a consumer's credit line."""
    def ok(name: str, *messages: Any) -> Any:
        outcome = client.send(key(name), list(messages))
        assert outcome.code == 0, (name, outcome.log)
        return outcome

    ok("owner", MsgCreateSubnet("text-generation", "hosts"))
    for param, value in {"commit_reveal": 0, "weights_rate_limit": 0}.items():
        ok("owner", MsgSetHyperparam(1, param, value))
    for name in ("val", "m1", "m2"):
        ok(name, MsgRegister(1, key(f"{name}/hot").address, 0))
    ok("val", MsgAddStake(1, key("val/hot").address, 1_000 * MINT))
    ok("p1", MsgRegisterProvider("https://provider.example", "A100", 4, 80, 32_000, 128_000, 1_000_000, "eu",
                                 ["datacenter"], 2 * MINT))
    ok("t1", MsgCreateDeployment(2_000, 4_096, 1, ["A100"], 40, 2 * LEASE_PRICE, b"\x01" * 32, 20 * MINT))
    ok("p1", MsgBid(1, LEASE_PRICE))
    ok("t1", MsgAcceptBid(1, key("p1").address))
    ok("gw", MsgRegisterGateway("https://gateway.example", 250, 5 * MINT))
    ok("c1", MsgOpenCredit(key("gw").address, 100 * MINT, 50_000, 1_000_000, 250, 0, 0))
    uids = {name: client.query(f"/subnets/hotkey/{format_address(key(f'{name}/hot').address)}")["subnets"]["1"]
            for name in ("m1", "m2")}
    return {name: int(uid) for name, uid in uids.items()}


def _keep_busy(net: Network, uids: dict[str, int], stop: threading.Event, outcomes: dict[str, int]) -> None:
    """Weights from the subnet's validator and transfers, one after another, until ``stop``."""
    def loop(client: ChainClient) -> None:
        round_ = 0
        while not stop.is_set():
            round_ += 1
            weights = [1 + round_ % 7, 8 - round_ % 7]
            for name, messages in (("val/hot", [MsgSetWeights(1, list(uids.values()), weights)]),
                                   ("payer", [MsgSend(key(f"r{round_ % 50}").address, 1_000 + round_)])):
                try:
                    outcome = client.send(key(name), messages)  # type: ignore[arg-type]
                    outcomes["ok" if outcome.code == 0 else outcome.log[:60]] = outcomes.get(
                        "ok" if outcome.code == 0 else outcome.log[:60], 0) + 1
                except Exception as error:  # a partition or a restart: counted, the loop goes on
                    outcomes[type(error).__name__] = outcomes.get(type(error).__name__, 0) + 1
                    time.sleep(0.5)
    def run() -> None:
        with ChainClient(f"http://127.0.0.1:{RPC_PORT}") as client:
            loop(client)
    net.hosts.thread(0, run)


def _signers(net: Network, index: int, height: int) -> set[str]:
    commit = net.rpc(index, "block", height=str(height))["block"]["last_commit"]["signatures"]
    return {s["validator_address"] for s in commit if s.get("signature")}


def test_a_host_joins_by_state_sync_is_voted_in_and_the_network_survives_cuts_and_partitions(
        network: Network) -> None:
    net, hosts = network, network.hosts
    uids = net.client(0, _set_up_workload)
    stop, outcomes = threading.Event(), {}
    busy = threading.Thread(target=_keep_busy, args=(net, uids, stop, outcomes), daemon=True)
    busy.start()  # on a thread of its own in host 0, so that host 0's RPC stays free for the checks
    try:
        net.wait(lambda: net.height(0) >= BLOCKS + 5, f"{BLOCKS} blocks", timeout_s=600)
        assert outcomes.get("ok", 0) >= 20, outcomes
        lease = net.client(0, lambda c: c.query("/market/lease/1"))
        line = net.client(0, lambda c: c.query(f"/credit/line/{format_address(key('c1').address)}/"
                                               f"{format_address(key('gw').address)}"))
        assert lease and line, (lease, line)

        # --- a fifth host joins by state sync ---------------------------------------------------------------
        home = str(net.folder / "joiner")
        peers = ",".join(f"{n.node_id}@{hosts.address(i)}:{P2P_PORT}" for i, n in enumerate(net.nodes))
        init = hosts.run(4, [
            sys.executable, "-m", "gridmint.cli.main", "--json", "node", "init", "--data-dir", home,
            "--genesis", f"http://{hosts.address(0)}:{RPC_PORT}/genesis", "--peers", peers,
            "--p2p-laddr", f"0.0.0.0:{P2P_PORT}", "--rpc-laddr", f"0.0.0.0:{RPC_PORT}",
            "--external-address", f"{hosts.address(4)}:{P2P_PORT}", "--allow-private-addresses",
            "--trust-rpc", f"http://{hosts.address(0)}:{RPC_PORT}", "--trust-rpc",
            f"http://{hosts.address(1)}:{RPC_PORT}", "--moniker", "node4",
            "--config", 'consensus.timeout_commit="10ms"', "--config", 'statesync.discovery_time="5s"',
            *(f"--config={section}.{name}={value}" for section, name, value in FAST)])
        assert init.returncode == 0, init.stdout + init.stderr
        joined = json.loads(init.stdout)
        assert joined["state_sync"]["trust_height"] >= BLOCKS
        hosts.spawn(4, _node_command(home), Path(home) / "node.log")
        net.wait(lambda: net.height(4) > 0 and not net.rpc(4, "status")["sync_info"]["catching_up"],
                 "the new host to reach the head", timeout_s=180)
        first = int(net.rpc(4, "status")["sync_info"]["earliest_block_height"])
        assert first > BLOCKS - SNAPSHOT_INTERVAL and (first - 1) % SNAPSHOT_INTERVAL == 0, first  # no replay
        assert re.search(rf"Snapshot restored\s+module=statesync height={first - 1} ",
                         (Path(home) / "cometbft.log").read_text())
        top = net.height(4)
        ours, theirs = net.headers(4, first, top), net.headers(0, first, top)
        assert [ours[h]["app_hash"] for h in range(first, top + 1)] == \
               [theirs[h]["app_hash"] for h in range(first, top + 1)]
        # Its app answers queries as the others do (a query at the head that reads every module's records).
        assert net.client(4, lambda c: c.query("/market/lease/1", height=top)) == \
               net.client(0, lambda c: c.query("/market/lease/1", height=top))

        # --- voted in, it signs -------------------------------------------------------------------------------
        keys = [validator_key(node) for node in net.nodes]
        newcomer = json.loads((Path(home) / "config" / "priv_validator_key.json").read_text())

        def vote_in(client: ChainClient) -> None:
            proposal = client.send(keys[0], [MsgPropose("add", base64.b64decode(newcomer["pub_key"]["value"]), 10,
                                                        "node4")])
            assert proposal.code == 0, proposal.log
            for voter in keys[1:3]:
                outcome = client.send(voter, [MsgVote(int(str(proposal.attribute("authority_proposal", "id"))))])
                assert outcome.code == 0, outcome.log
        net.client(1, vote_in)
        net.wait(lambda: newcomer["address"] in _signers(net, 0, net.height(0)), "the new authority to sign", 60)

        # --- one authority's link cut: the other four (of five) go on -------------------------------------------
        hosts.cut(3)
        cut_at = net.height(0)
        net.wait(lambda: net.height(0) >= cut_at + 10 and net.height(4) >= cut_at + 10,
                 "blocks without host 3", 60)

        # --- a 2|2 partition of the rest: no side has two thirds, so no block and no fork -------------------------
        hosts.partition([2, 4])
        time.sleep(3)  # what was in flight lands
        halted = [net.height(i) for i in (0, 1, 2, 4)]
        time.sleep(5)
        assert [net.height(i) for i in (0, 1, 2, 4)] == halted, "a side of a 2|2 partition made a block"
        common = min(halted)
        hashes = [net.headers(i, common - 5, common) for i in (0, 1, 2, 4)]
        assert all(h == hashes[0] for h in hashes), "the partition forked the chain"

        # --- healed: blocks resume on every host, host 3 catches up, one chain --------------------------------------
        hosts.heal()
        hosts.mend(3)
        net.wait(lambda: min(net.height(i) for i in range(5)) >= max(halted) + 5, "blocks after the heal", 120)
        top = min(net.height(i) for i in range(5))
        reference = net.headers(0, first, top)
        for index in range(1, 5):
            assert net.headers(index, first, top) == reference, f"host {index} disagrees"
    finally:
        stop.set()
        busy.join(timeout=30)
    assert outcomes.get("ok", 0) >= 40, outcomes
