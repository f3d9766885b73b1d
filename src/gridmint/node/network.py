"""A local network of authorities: each one a CometBFT process and a GridMint app process, on loopback.

``init_network`` writes one CometBFT home per authority (``cometbft init``: node and validator keys), one genesis
for all (GridMint's app state, with the authority module listing exactly the validators' keys, in CometBFT's
shape), and each node's config: loopback ports, every other node as a persistent peer, the app on a unix socket in
the home, short timeouts for fast local blocks. ``start_network`` runs the app (``gridmint net app``) and CometBFT
for each node, each with its log in the home; ``stop_network`` stops them; ``network_status`` asks each node's RPC.
The chain client talks to any node's RPC (``http://127.0.0.1:<rpc port>``) as it does to a devnode.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop

from gridmint.chain.app import MODULES
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import register
from gridmint.chain.genesis import make_genesis_document, validate_genesis
from gridmint.chain.store import DEFAULT_KEEP_RECENT
from gridmint.node.limits import RPCLimits
from gridmint.node.processes import stop_process_group
from gridmint.node.setup import DEV_SUBNETS

COMETBFT_MISSING = register("net", 1, "cometbft_missing")
NETWORK_MISSING = register("net", 2, "network_missing")
NETWORK_EXISTS = register("net", 3, "network_exists")

PROJECT_BIN = Path(__file__).resolve().parents[3] / "bin"
MANIFEST = "network.json"
AUTHORITY_FUNDS = 1_000 * 10**9  # grains each node's validator account starts with, for the fees of its votes


@dataclass(frozen=True)
class NodeSpec:
    name: str
    home: str
    rpc_port: int
    p2p_port: int
    node_id: str
    validator_pub_key: str  # base64
    keep_recent: int = DEFAULT_KEEP_RECENT  # heights of state history its app keeps (0: all); node-local
    snapshot_interval: int = 0  # heights between the state-sync snapshots its app takes (0: none); node-local
    host: str = "127.0.0.1"  # the address other nodes dial it at (its own host's, on a network of hosts)


def find_cometbft() -> str:
    """The pinned CometBFT binary: the project's bin/ first, then PATH."""
    local = PROJECT_BIN / "cometbft"
    if local.exists():
        return str(local)
    found = shutil.which("cometbft")
    if found:
        return found
    raise COMETBFT_MISSING("cometbft is not installed: run `make cometbft` (go install "
                           "github.com/cometbft/cometbft/cmd/cometbft@v0.38.25 into ./bin)")


def set_config_value(text: str, section: str | None, key: str, value: str) -> str:
    """Replace ``key = ...`` in ``[section]`` (None: the top, before any section) of a config.toml."""
    lines = text.split("\n")
    current: str | None = None
    for index, line in enumerate(lines):
        header = re.match(r"^\[([a-z0-9_.]+)\]\s*$", line)
        if header:
            current = header.group(1)
            continue
        if current == section and re.match(rf"^{re.escape(key)}\s*=", line):
            lines[index] = f"{key} = {value}"
            return "\n".join(lines)
    raise ValueError(f"config.toml has no {key} in [{section or 'top'}]")


def init_network(directory: Path, authorities: int = 4, chain_id: str = "gridmint-net",
                 balances: list[tuple[str, int]] | None = None, base_port: int = 27000,
                 timeout_commit: str = "300ms", full_nodes: int = 0,
                 sections: dict[str, Any] | None = None, keep_recent: int = DEFAULT_KEEP_RECENT,
                 rpc_limits: RPCLimits | None = None, snapshot_interval: int = 0,
                 hosts: list[str] | None = None, settings: list[tuple[str, str, str]] | None = None
                 ) -> list[NodeSpec]:
    """Homes for ``authorities`` validators and ``full_nodes`` more nodes (peers that do not sign until a vote
    adds them); every node's validator account gets ``AUTHORITY_FUNDS`` to pay for its votes. ``sections`` replace
    app_state sections of the genesis (as tests do). ``keep_recent`` is each node's history window (the
    manifest keeps it per node, so one can be made an archive by editing it). ``rpc_limits`` go into each node's
    [rpc] section, the same limits a devnode keeps (CometBFT enforces each of them). ``snapshot_interval``: heights
    between each node's state-sync snapshots. ``hosts``: one address per node, for nodes on hosts of their own
    (network namespaces in tests): each then listens on every interface of its host, P2P on ``base_port`` and
    RPC on ``base_port + 1`` (served to the other hosts: joining nodes read trusted headers from it), and its
    peers dial it at its host's address. ``settings``: more ``(section, key, TOML value)`` for every config.toml."""
    if hosts is not None and len(hosts) != authorities + full_nodes:
        raise ValueError(f"{len(hosts)} hosts for {authorities + full_nodes} nodes")
    if (directory / MANIFEST).exists():
        raise NETWORK_EXISTS(f"{directory} already holds a network; stop it and remove the folder to start anew")
    cometbft = find_cometbft()
    nodes = []
    for index in range(authorities + full_nodes):
        home = directory / f"node{index}"
        subprocess.run([cometbft, "init", "--home", str(home)], check=True, capture_output=True)
        node_id = subprocess.run([cometbft, "show-node-id", "--home", str(home)], check=True, capture_output=True,
                                 text=True).stdout.strip()
        key = json.loads((home / "config" / "priv_validator_key.json").read_text())
        if hosts is None:
            nodes.append(NodeSpec(f"node{index}", str(home), base_port + 10 * index, base_port + 10 * index + 1,
                                  node_id, key["pub_key"]["value"], keep_recent, snapshot_interval))
        else:
            nodes.append(NodeSpec(f"node{index}", str(home), base_port + 1, base_port, node_id,
                                  key["pub_key"]["value"], keep_recent, snapshot_interval, hosts[index]))
    template = json.loads((Path(nodes[0].home) / "config" / "genesis.json").read_text())
    signers = nodes[:authorities]
    funded = [(format_address(validator_key(n).address), AUTHORITY_FUNDS) for n in nodes]
    document = make_genesis_document(chain_id, template["genesis_time"].split(".")[0] + "Z",
                                     [(n.name, base64.b64decode(n.validator_pub_key)) for n in signers],
                                     funded + (balances or []))
    document["app_state"]["subnets"] = DEV_SUBNETS
    document["app_state"].update(sections or {})
    validate_genesis(document, MODULES)
    genesis = {**document, "consensus_params": template["consensus_params"], "app_hash": "",
               "validators": [{"address": json.loads((Path(n.home) / "config" / "priv_validator_key.json")
                                                     .read_text())["address"],
                               "pub_key": {"type": "tendermint/PubKeyEd25519", "value": n.validator_pub_key},
                               "power": "10", "name": n.name} for n in signers]}
    for node in nodes:
        home = Path(node.home)
        (home / "config" / "genesis.json").write_text(json.dumps(genesis, indent=2))
        config = (home / "config" / "config.toml").read_text()
        peers = ",".join(f"{p.node_id}@{p.host}:{p.p2p_port}" for p in nodes if p is not node)
        listen = "127.0.0.1" if hosts is None else "0.0.0.0"  # a host of its own (a test's namespace)
        for section, key, value in (
                (None, "proxy_app", f'"unix://{home}/app.sock"'),
                (None, "moniker", f'"{node.name}"'),
                ("rpc", "laddr", f'"tcp://{listen}:{node.rpc_port}"'),
                ("p2p", "laddr", f'"tcp://{listen}:{node.p2p_port}"'),
                ("p2p", "external_address", f'"{node.host}:{node.p2p_port}"' if hosts else '""'),
                ("p2p", "persistent_peers", f'"{peers}"'),
                ("p2p", "addr_book_strict", "false"),
                ("p2p", "allow_duplicate_ip", "true"),
                ("consensus", "timeout_commit", f'"{timeout_commit}"'),
                ("consensus", "timeout_propose", '"1s"'),
                *(("rpc", key, value) for key, value in (rpc_limits or RPCLimits()).cometbft_config()),
                *(settings or ())):
            config = set_config_value(config, section, key, value)
        (home / "config" / "config.toml").write_text(config)
    (directory / MANIFEST).write_text(json.dumps({"chain_id": chain_id, "nodes": [asdict(n) for n in nodes]},
                                                 indent=2))
    return nodes


def validator_key(node: NodeSpec) -> PrivateKey:
    """The node's CometBFT validator key, which is also its authority account on chain."""
    key = json.loads((Path(node.home) / "config" / "priv_validator_key.json").read_text())
    return PrivateKey(base64.b64decode(key["priv_key"]["value"])[:32])


def load_nodes(directory: Path) -> list[NodeSpec]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise NETWORK_MISSING(f"no network in {directory}; create one with `gridmint net init`") from None
    return [NodeSpec(**entry) for entry in manifest["nodes"]]


def start_node(node: NodeSpec) -> dict[str, int]:
    """Start the app, wait for its socket, then CometBFT; returns their pids."""
    home = Path(node.home)
    socket_path = home / "app.sock"
    socket_path.unlink(missing_ok=True)
    with (home / "app.log").open("ab") as log:
        app = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", "net", "app", "--home", str(home),
                                "--keep-recent", str(node.keep_recent),
                                "--snapshot-interval", str(node.snapshot_interval)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        if app.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the app of {node.name} did not start; see {home / 'app.log'}")
        time.sleep(0.05)
    with (home / "cometbft.log").open("ab") as log:
        comet = subprocess.Popen([find_cometbft(), "start", "--home", str(home)], stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    pids = {"app": app.pid, "cometbft": comet.pid}
    (home / "pids.json").write_text(json.dumps(pids))
    return pids


def stop_node(node: NodeSpec, timeout_s: float = 15.0) -> None:
    """CometBFT first (it stops calling the app), then the app."""
    path = Path(node.home) / "pids.json"
    if not path.exists():
        return
    pids = json.loads(path.read_text())
    for name in ("cometbft", "app"):
        stop_process_group(pids[name], timeout_s)
    path.unlink()


def start_network(directory: Path) -> list[NodeSpec]:
    nodes = load_nodes(directory)
    for node in nodes:
        start_node(node)
    return nodes


def stop_network(directory: Path) -> None:
    for node in load_nodes(directory):
        stop_node(node)


def node_status(node: NodeSpec) -> dict[str, Any]:
    try:
        answer = httpx.post(f"http://127.0.0.1:{node.rpc_port}", timeout=2,
                            json={"jsonrpc": "2.0", "id": 1, "method": "status", "params": {}}).json()["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return {"node": node.name, "running": False}
    sync = answer["sync_info"]
    return {"node": node.name, "running": True, "height": int(sync["latest_block_height"]),
            "app_hash": sync["latest_app_hash"], "catching_up": sync["catching_up"],
            "rpc": f"http://127.0.0.1:{node.rpc_port}",
            "validator": format_address(bytes.fromhex(answer["validator_info"]["address"]))
            if answer.get("validator_info") else ""}


def network_status(directory: Path) -> list[dict[str, Any]]:
    return [node_status(node) for node in load_nodes(directory)]


def run_app(home: Path, keep_recent: int = DEFAULT_KEEP_RECENT, snapshot_interval: int = 0) -> None:
    """The app process of one node: the chain's state in ``<home>/app`` (history of the last ``keep_recent``
    heights), its state-sync snapshots in ``<home>/app/snapshots`` (every ``snapshot_interval`` heights), ABCI on
    ``<home>/app.sock``."""
    from gridmint.chain.app import App
    from gridmint.chain.store import Store
    from gridmint.node.abci.server import serve_abci
    from gridmint.node.snapshots import SnapshotStore

    (home / "app").mkdir(exist_ok=True)
    store = Store(home / "app" / "state.sqlite", keep_recent=keep_recent)
    snapshots = SnapshotStore(home / "app" / "snapshots", snapshot_interval)

    async def main() -> None:
        task = asyncio.create_task(serve_abci(App(store), f"unix://{home}/app.sock", snapshots))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        # uvloop: CometBFT's requests arrive a few at a time, so the event loop's cost per read counts
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    finally:
        snapshots.wait()
        store.close()
