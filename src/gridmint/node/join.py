"""A full node on a host of its own, joining a running network: ``gridmint node init --genesis … --peers …`` and
``gridmint node start``.

``init_full_node`` makes a CometBFT home (``cometbft init``: node and validator keys), writes the network's genesis
(a file, or a URL such as any node's ``/genesis`` RPC), the peers to dial, where RPC and P2P listen and the address
other hosts dial, and, when RPC servers are given to trust, CometBFT's ``[statesync]`` section with a trusted height
and block hash read from the first of them: the node then restores a recent snapshot (node/snapshots.py) instead of
replaying every block, and block sync takes it from there to the head. Safe defaults: RPC on loopback unless asked,
P2P on every interface (a network node is meant to be dialled). The node's validator key is its authority
account: once authorities vote it in (``authority/propose``), it signs blocks.

``run_full_node`` runs the node in the foreground: the app (ABCI on ``<home>/app.sock``, state in ``<home>/app``,
snapshots every ``snapshot_interval`` heights) and CometBFT as its child, both stopped by SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gridmint.chain.app import MODULES
from gridmint.chain.errors import ChainError, register
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.store import DEFAULT_KEEP_RECENT
from gridmint.node.network import find_cometbft, set_config_value
from gridmint.node.snapshots import DEFAULT_KEEP_SNAPSHOTS, DEFAULT_SNAPSHOT_INTERVAL

log = logging.getLogger("gridmint.node")

BAD_PEER = register("node", 2, "bad_peer")
BAD_GENESIS_SOURCE = register("node", 3, "bad_genesis_source")
TRUST_UNAVAILABLE = register("node", 4, "trust_unavailable")
HOME_EXISTS = register("node", 5, "home_exists")
BAD_ADDRESS = register("node", 6, "bad_address")
BAD_CONFIG = register("node", 7, "bad_config")

PEER = re.compile(r"^([0-9a-f]{40})@([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")
LISTEN = re.compile(r"^(tcp://)?([A-Za-z0-9.\-]*|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")
CONFIG_SETTING = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)=(.*)$")
DEFAULT_P2P_LADDR = "tcp://0.0.0.0:26656"
DEFAULT_RPC_LADDR = "tcp://127.0.0.1:26657"
GENESIS_BYTES_LIMIT = 64 * 1024 * 1024
FETCH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TrustPoint:
    """A header the light client of state sync starts from: height and block hash, as read from an RPC."""

    height: int
    hash: str  # hex, as CometBFT's config wants it


def is_full_node_home(home: Path) -> bool:
    return (home / "config" / "config.toml").exists()


def parse_peers(text: str) -> list[str]:
    """``id@host:port,…`` checked one by one (CometBFT would only log a bad one and never dial it)."""
    peers = [entry.strip() for entry in text.split(",") if entry.strip()]
    for entry in peers:
        match = PEER.match(entry)
        if match is None or not 0 < int(match.group(3)) < 65536:
            raise BAD_PEER(f"peer '{entry[:120]}': expected NODE_ID@HOST:PORT with the 40 hex digits of "
                           "`cometbft show-node-id`, such as 3f1e…@10.0.0.2:26656")
    return peers


def listen_address(text: str, option: str) -> str:
    """``[tcp://]host:port`` as CometBFT's ``tcp://host:port``."""
    match = LISTEN.match(text.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise BAD_ADDRESS(f"{option} {text[:120]}: expected HOST:PORT (or tcp://HOST:PORT), such as 0.0.0.0:26656")
    return f"tcp://{match.group(2) or '0.0.0.0'}:{match.group(3)}"


def fetch_genesis(source: str) -> tuple[bytes, dict[str, Any]]:
    """The genesis from a file or a URL (the document itself, or an RPC ``/genesis`` answer): its bytes as they
    will be written and the parsed document, validated as the app will read it."""
    try:
        if source.startswith(("http://", "https://")):
            answer = httpx.get(source, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
            answer.raise_for_status()
            raw = answer.content
        else:
            raw = Path(source).read_bytes()
    except (OSError, httpx.HTTPError) as error:
        raise BAD_GENESIS_SOURCE(f"cannot read the genesis from {source[:200]} ({error}); expected a file or an "
                                 "http(s) URL such as http://NODE:26657/genesis") from None
    if len(raw) > GENESIS_BYTES_LIMIT:
        raise BAD_GENESIS_SOURCE(f"the genesis at {source[:200]} has {len(raw)} bytes, over {GENESIS_BYTES_LIMIT}")
    try:
        document = json.loads(raw)
    except ValueError:
        raise BAD_GENESIS_SOURCE(f"the genesis at {source[:200]} is not JSON") from None
    if isinstance(document, dict) and isinstance(document.get("result"), dict) and "genesis" in document["result"]:
        document = document["result"]["genesis"]  # a node's /genesis answer
        raw = json.dumps(document, indent=2).encode()
    validate_genesis(document, MODULES)
    if not isinstance(document.get("validators", []), list):
        raise BAD_GENESIS_SOURCE("the genesis' validators is not a list")
    return raw, document


def _rpc(url: str, method: str, **params: Any) -> Any:
    answer = httpx.post(url, timeout=FETCH_TIMEOUT_S,
                        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
    return answer["result"]


def trust_point(rpc_url: str) -> TrustPoint:
    """The latest block of ``rpc_url``'s node, the header state sync trusts."""
    try:
        height = int(_rpc(rpc_url, "status")["sync_info"]["latest_block_height"])
        block_hash = str(_rpc(rpc_url, "block", height=str(height))["block_id"]["hash"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise TRUST_UNAVAILABLE(f"cannot read a trusted height and hash from {rpc_url[:200]} "
                                f"({type(error).__name__}: {error}); expected the RPC of a running node of the "
                                "network, such as http://NODE:26657") from None
    if height < 1 or not re.fullmatch(r"[0-9A-Fa-f]{64}", block_hash):
        raise TRUST_UNAVAILABLE(f"{rpc_url[:200]} reports height {height} and block hash {block_hash[:80]!r}; "
                                "expected a committed height and a 64-hex-digit hash")
    return TrustPoint(height, block_hash.upper())


def parse_config_settings(settings: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``section.key=value`` entries for config.toml (value as TOML: quote strings)."""
    parsed = []
    for setting in settings:
        match = CONFIG_SETTING.match(setting)
        if match is None:
            raise BAD_CONFIG(f"--config {setting[:120]}: expected SECTION.KEY=VALUE with the value written as TOML, "
                             "such as consensus.timeout_commit=\"1s\"")
        parsed.append((match.group(1), match.group(2), match.group(3)))
    return parsed


def init_full_node(home: Path, genesis_source: str, peers: str, p2p_laddr: str = DEFAULT_P2P_LADDR,
                   rpc_laddr: str = DEFAULT_RPC_LADDR, external_address: str = "", trust_rpc: tuple[str, ...] = (),
                   allow_private_addresses: bool = False, moniker: str = "",
                   settings: tuple[str, ...] = ()) -> dict[str, Any]:
    """Make ``home`` a node of the network that ``genesis_source`` describes; returns what was set up. Every
    input is checked before anything is written: a refused init leaves no home behind."""
    if is_full_node_home(home) or (home / "app").exists():
        raise HOME_EXISTS(f"{home} already holds a node; remove it or choose another --data-dir")
    peer_list = parse_peers(peers)
    p2p, rpc = listen_address(p2p_laddr, "--p2p-laddr"), listen_address(rpc_laddr, "--rpc-laddr")
    external = listen_address(external_address, "--external-address").removeprefix("tcp://") \
        if external_address else ""
    extra = parse_config_settings(settings)
    raw_genesis, document = fetch_genesis(genesis_source)
    trust = trust_point(trust_rpc[0]) if trust_rpc else None
    cometbft = find_cometbft()
    # Built aside and moved into place whole: a refusal below leaves nothing at ``home``.
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        joined = _write_home(cometbft, partial, home, raw_genesis, peer_list, p2p, rpc, external, trust, trust_rpc,
                             allow_private_addresses, moniker, extra)
        os.replace(partial, home)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {**joined, "home": str(home), "chain_id": document["chain_id"]}


def _write_home(cometbft: str, partial: Path, home: Path, raw_genesis: bytes, peer_list: list[str], p2p: str,
                rpc: str, external: str, trust: TrustPoint | None, trust_rpc: tuple[str, ...],
                allow_private_addresses: bool, moniker: str, extra: list[tuple[str, str, str]]) -> dict[str, Any]:
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([cometbft, "init", "--home", str(partial)], check=True, capture_output=True)
    node_id = subprocess.run([cometbft, "show-node-id", "--home", str(partial)], check=True, capture_output=True,
                             text=True).stdout.strip()
    (partial / "config" / "genesis.json").write_bytes(raw_genesis)
    values: list[tuple[str | None, str, str]] = [
        (None, "proxy_app", f'"unix://{home.resolve()}/app.sock"'),
        (None, "moniker", json.dumps(moniker or f"gridmint-{node_id[:8]}")),
        ("rpc", "laddr", f'"{rpc}"'),
        ("p2p", "laddr", f'"{p2p}"'),
        ("p2p", "external_address", f'"{external}"'),
        ("p2p", "persistent_peers", f'"{",".join(peer_list)}"'),
        ("p2p", "addr_book_strict", "false" if allow_private_addresses else "true")]
    if trust is not None:
        servers = list(trust_rpc) if len(trust_rpc) > 1 else [trust_rpc[0]] * 2  # CometBFT asks for two
        values += [("statesync", "enable", "true"),
                   ("statesync", "rpc_servers", f'"{",".join(servers)}"'),
                   ("statesync", "trust_height", str(trust.height)),
                   ("statesync", "trust_hash", f'"{trust.hash}"')]
    values += extra
    config_path = partial / "config" / "config.toml"
    config = config_path.read_text()
    for section, key, value in values:
        try:
            config = set_config_value(config, section, key, value)
        except ValueError as error:
            raise BAD_CONFIG(f"{error}; expected a key of CometBFT v0.38's config.toml") from None
    config_path.write_text(config)
    validator = json.loads((partial / "config" / "priv_validator_key.json").read_text())
    return {"node_id": node_id, "peers": peer_list,
            "p2p_laddr": p2p, "rpc_laddr": rpc, "external_address": external,
            "validator_pub_key": validator["pub_key"]["value"], "validator_address": validator["address"],
            "state_sync": None if trust is None else {"trust_height": trust.height, "trust_hash": trust.hash}}


def run_full_node(home: Path, keep_recent: int = DEFAULT_KEEP_RECENT,
                  snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL, keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS
                  ) -> int:
    """Run the app and CometBFT until a signal (or until CometBFT exits); returns CometBFT's exit status."""
    import uvloop

    from gridmint.chain.app import App
    from gridmint.chain.store import Store
    from gridmint.node.abci.server import serve_abci
    from gridmint.node.snapshots import SnapshotStore

    if not is_full_node_home(home):
        raise ChainError(BAD_CONFIG, f"{home} is not a node's home; make one with `gridmint node init --genesis …`")
    (home / "app").mkdir(exist_ok=True)
    store = Store(home / "app" / "state.sqlite", keep_recent=keep_recent)
    snapshots = SnapshotStore(home / "app" / "snapshots", snapshot_interval, keep_snapshots)
    socket_path = home / "app.sock"

    async def main() -> int:
        app_task = asyncio.create_task(serve_abci(App(store), f"unix://{socket_path}", snapshots))
        while not socket_path.exists():
            if app_task.done():
                await app_task  # raises what stopped it
            await asyncio.sleep(0.02)
        with (home / "cometbft.log").open("ab") as comet_log:
            comet = await asyncio.create_subprocess_exec(find_cometbft(), "start", "--home", str(home),
                                                         stdout=comet_log, stderr=subprocess.STDOUT)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        waiter = asyncio.create_task(stopping.wait())
        exited = asyncio.create_task(comet.wait())
        await asyncio.wait({waiter, exited, app_task}, return_when=asyncio.FIRST_COMPLETED)
        if comet.returncode is None:  # CometBFT first: it stops calling the app
            comet.terminate()
            try:
                await asyncio.wait_for(comet.wait(), 15)
            except TimeoutError:
                comet.kill()
                await comet.wait()
        waiter.cancel()
        app_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app_task
        return comet.returncode or 0

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            status = runner.run(main())
    finally:
        snapshots.wait()
        store.close()
    log.info("Node stopped at height %d.", store.height)
    return status
