"""``gridmint node``: init a data directory, start the devnode; or, with ``--genesis``, make a full node that joins
a running network on a host of its own (node/join.py) and start it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gridmint.chain.crypto import parse_address
from gridmint.chain.store import DEFAULT_KEEP_RECENT
from gridmint.chain.units import format_mint
from gridmint.cli.output import emit, log_level_option, start_logging
from gridmint.client.amounts import parse_mint
from gridmint.client.wallet import DEV_ACCOUNT_BALANCE, dev_account
from gridmint.node.devnode import GENESIS_FILE
from gridmint.node.join import DEFAULT_P2P_LADDR, DEFAULT_RPC_LADDR, init_full_node, is_full_node_home
from gridmint.node.setup import init_data_dir
from gridmint.node.snapshots import DEFAULT_KEEP_SNAPSHOTS, DEFAULT_SNAPSHOT_INTERVAL

DEFAULT_DATA_DIR = Path.home() / ".gridmint" / "node"
data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA_DIR,
                               show_default=True, help="Where the node keeps its key, genesis, state and blocks.")


@click.group()
def node() -> None:
    """Run a chain node."""


def _parse_funding(entries: tuple[str, ...]) -> list[tuple[str, int]]:
    funded = []
    for entry in entries:
        address, sep, amount = entry.partition("=")
        try:
            if not sep:
                raise ValueError("expected ADDRESS=AMOUNT")
            parse_address(address)
            funded.append((address, parse_mint(amount)))
        except ValueError as exc:
            raise click.BadParameter(f"--fund {entry}: {exc}") from None
    return funded


@node.command()
@data_dir_option
@click.option("--chain-id", default="gridmint-dev", show_default=True)
@click.option("--dev-accounts", default=2, show_default=True, help="Well-known funded dev accounts (dev chains only).")
@click.option("--fund", multiple=True, metavar="ADDRESS=MINT", help="Fund an address at genesis (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing genesis and erase the chain's data.")
@click.option("--genesis", "genesis_source", metavar="FILE|URL",
              help="Join a running network instead: its genesis, a file or a URL such as http://NODE:26657/genesis.")
@click.option("--peers", default="", metavar="ID@HOST:PORT,...", help="With --genesis: the nodes to dial.")
@click.option("--p2p-laddr", default=DEFAULT_P2P_LADDR, show_default=True,
              help="With --genesis: where this node listens for peers.")
@click.option("--rpc-laddr", default=DEFAULT_RPC_LADDR, show_default=True,
              help="With --genesis: where its RPC listens (loopback unless you mean to serve others).")
@click.option("--external-address", default="", metavar="HOST:PORT",
              help="With --genesis: the address other hosts dial to reach this node.")
@click.option("--trust-rpc", multiple=True, metavar="URL",
              help="With --genesis: state sync, trusting the latest block of this node's RPC (repeatable; the "
                   "light client checks against every one).")
@click.option("--allow-private-addresses", is_flag=True,
              help="With --genesis: accept peers at private addresses (a private network; CometBFT refuses them "
                   "by default).")
@click.option("--moniker", default="", help="With --genesis: this node's name among its peers.")
@click.option("--config", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="With --genesis: any other config.toml setting, the value as TOML (repeatable).")
@click.pass_context
def init(ctx: click.Context, data_dir: Path, chain_id: str, dev_accounts: int, fund: tuple[str, ...],
         force: bool, genesis_source: str | None, peers: str, p2p_laddr: str, rpc_laddr: str, external_address: str,
         trust_rpc: tuple[str, ...], allow_private_addresses: bool, moniker: str, settings: tuple[str, ...]) -> None:
    """Write a node key and a genesis with this node as the authority and funded dev accounts; with --genesis,
    a full node of a running network instead (its keys, the network's genesis, peers, addresses, state sync)."""
    if genesis_source is not None:
        if fund or force:
            raise click.UsageError("--fund and --force make a new chain; a node joining one takes its genesis as is")
        joined = init_full_node(data_dir, genesis_source, peers, p2p_laddr, rpc_laddr, external_address,
                                trust_rpc, allow_private_addresses, moniker, settings)
        sync = joined["state_sync"]
        emit(ctx, joined, "\n".join([
            f"Node {joined['node_id']} of chain {joined['chain_id']} in {data_dir}.",
            f"  peers: {', '.join(joined['peers']) or 'none'}; P2P {joined['p2p_laddr']}, RPC {joined['rpc_laddr']}"
            + (f", dialled at {joined['external_address']}" if joined["external_address"] else ""),
            f"  state sync from height {sync['trust_height']}" if sync else "  no state sync: replays every block",
            f"  validator key {joined['validator_pub_key']} (authorities add it with `authority propose`)",
            f"Start it with: gridmint node start --data-dir {data_dir}"]))
        return
    if peers:
        raise click.UsageError("--peers joins a running network: pass its --genesis too")
    funded = _parse_funding(fund)
    accounts = [dev_account(i) for i in range(dev_accounts)]
    balances = [(a.address, DEV_ACCOUNT_BALANCE) for a in accounts] + funded
    authority = init_data_dir(data_dir, chain_id, balances, force=force)
    (data_dir / "dev_accounts.json").write_text(json.dumps([a.__dict__ for a in accounts], indent=2) + "\n")
    lines = [f"Initialised chain {chain_id} in {data_dir}; authority {authority}."]
    lines += [f"  {a.name}: {a.address} (well-known dev key: `gridmint wallet restore {a.name} --mnemonic ...`, "
              f"phrase in {data_dir / 'dev_accounts.json'})" for a in accounts]
    lines += [f"  funded {address} with {format_mint(grains)}" for address, grains in funded]
    emit(ctx, {"chain_id": chain_id, "data_dir": str(data_dir), "authority": authority,
               "dev_accounts": [a.__dict__ for a in accounts],
               "funded": [{"address": a, "amount": g} for a, g in funded]}, "\n".join(lines))


@node.command()
@data_dir_option
@click.option("--dev", is_flag=True, help="Initialise the data directory with a dev genesis if it has none.")
@click.option("--block-time", type=float, default=1.0, show_default=True,
              help="Seconds between blocks; 0 makes a block as soon as transactions wait.")
@click.option("--rpc-laddr", default="127.0.0.1:26657", show_default=True,
              help="Where the devnode's RPC listens (a full node's is set by `node init`).")
@log_level_option
@click.option("--keep-recent", type=click.IntRange(min=0), default=DEFAULT_KEEP_RECENT, show_default=True,
              help="Heights of state history kept for queries at a height; 0 keeps every height (archive node).")
@click.option("--rpc-limit", multiple=True, metavar="NAME=VALUE",
              help="Change an RPC limit (repeatable), by CometBFT's name: max_body_bytes, max_request_batch_size, "
                   "max_open_connections, ... (see gridmint.node.limits).")
@click.option("--snapshot-interval", type=click.IntRange(min=0), default=DEFAULT_SNAPSHOT_INTERVAL,
              show_default=True, help="A full node: heights between the state snapshots it offers to joining "
                                      "nodes (0: none).")
@click.option("--keep-snapshots", type=click.IntRange(min=1), default=DEFAULT_KEEP_SNAPSHOTS, show_default=True,
              help="A full node: how many of its newest snapshots it keeps.")
def start(data_dir: Path, dev: bool, block_time: float, rpc_laddr: str, log_level: str, keep_recent: int,
          rpc_limit: tuple[str, ...], snapshot_interval: int, keep_snapshots: int) -> None:
    """Start the node: a full node if `node init --genesis` made one here (the app and CometBFT), otherwise the
    devnode (one authority, a mempool, blocks, and CometBFT's JSON-RPC)."""
    from gridmint.node.limits import RPCLimits
    from gridmint.node.server import run_devnode

    start_logging(log_level)
    if is_full_node_home(data_dir):
        from gridmint.node.join import run_full_node

        raise SystemExit(run_full_node(data_dir, keep_recent, snapshot_interval, keep_snapshots))
    if block_time < 0:
        raise click.BadParameter("--block-time must be 0 or more seconds")
    host, _, port = rpc_laddr.removeprefix("tcp://").rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"--rpc-laddr {rpc_laddr}: expected HOST:PORT")
    if dev and not (data_dir / GENESIS_FILE).exists():
        init_data_dir(data_dir, "gridmint-dev", [(dev_account(i).address, DEV_ACCOUNT_BALANCE) for i in range(2)])
    limits = RPCLimits().with_settings(rpc_limit)
    run_devnode(data_dir, block_time, host or "127.0.0.1", int(port), keep_recent, limits)
