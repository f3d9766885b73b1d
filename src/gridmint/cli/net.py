"""``gridmint net``: a local network of authorities, each a CometBFT node and a GridMint app."""

from __future__ import annotations

from pathlib import Path

import click

from gridmint.chain.store import DEFAULT_KEEP_RECENT
from gridmint.cli.output import emit, start_logging
from gridmint.client.amounts import parse_mint
from gridmint.node.limits import RPCLimits
from gridmint.node.network import init_network, network_status, run_app, start_network, stop_network

dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                          default=Path("gridmint-net"), show_default=True, help="Where the nodes' homes live.")


@click.group()
def net() -> None:
    """A local multi-authority network on CometBFT."""


@net.command()
@click.option("--authorities", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option("--chain-id", default="gridmint-net", show_default=True)
@click.option("--fund", multiple=True, metavar="ADDRESS=MINT", help="Fund an account at genesis (repeatable).")
@click.option("--base-port", type=int, default=27000, show_default=True,
              help="Node i listens for RPC on base+10i and for peers on base+10i+1.")
@click.option("--timeout-commit", default="300ms", show_default=True, help="CometBFT's pause between blocks.")
@click.option("--keep-recent", type=click.IntRange(min=0), default=DEFAULT_KEEP_RECENT, show_default=True,
              help="Heights of state history each node keeps for queries at a height; 0 keeps every height.")
@click.option("--rpc-limit", multiple=True, metavar="NAME=VALUE",
              help="Change an RPC limit in every node's config.toml (repeatable), as `node start --rpc-limit`.")
@click.option("--snapshot-interval", type=click.IntRange(min=0), default=0, show_default=True,
              help="Heights between the state snapshots each node offers to joining nodes (0: none).")
@dir_option
@click.pass_context
def init(ctx: click.Context, authorities: int, chain_id: str, fund: tuple[str, ...], base_port: int,
         timeout_commit: str, keep_recent: int, rpc_limit: tuple[str, ...], snapshot_interval: int,
         directory: Path) -> None:
    """Write the nodes' homes: keys, one genesis, configs with every other node as a peer."""
    balances = []
    for entry in fund:
        address, _, amount = entry.partition("=")
        balances.append((address, parse_mint(amount)))
    limits = RPCLimits().with_settings(rpc_limit)
    nodes = init_network(directory, authorities, chain_id, balances, base_port, timeout_commit,
                         keep_recent=keep_recent, rpc_limits=limits, snapshot_interval=snapshot_interval)
    emit(ctx, [n.__dict__ for n in nodes], "\n".join(
        [f"{n.name}: RPC http://127.0.0.1:{n.rpc_port}, home {n.home}" for n in nodes]
        + [f"Start it with: gridmint net start --dir {directory}"]))


@net.command()
@dir_option
@click.pass_context
def start(ctx: click.Context, directory: Path) -> None:
    """Start every node's app and CometBFT (logs in each home)."""
    nodes = start_network(directory)
    emit(ctx, {"started": [n.name for n in nodes]},
         f"Started {len(nodes)} nodes; RPC at http://127.0.0.1:{nodes[0].rpc_port} (and every 10th port after).")


@net.command()
@dir_option
@click.pass_context
def stop(ctx: click.Context, directory: Path) -> None:
    """Stop every node (CometBFT, then its app)."""
    stop_network(directory)
    emit(ctx, {"stopped": True}, "Stopped.")


@net.command()
@dir_option
@click.pass_context
def status(ctx: click.Context, directory: Path) -> None:
    """Each node's height and app hash."""
    rows = network_status(directory)
    emit(ctx, rows, "\n".join(f"{r['node']}: height {r['height']}, app hash {r['app_hash'][:16]}…"
                              if r["running"] else f"{r['node']}: not running" for r in rows))


@net.command(hidden=True)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--keep-recent", type=click.IntRange(min=0), default=DEFAULT_KEEP_RECENT, show_default=True)
@click.option("--snapshot-interval", type=click.IntRange(min=0), default=0, show_default=True)
def app(home: Path, keep_recent: int, snapshot_interval: int) -> None:
    """Serve ABCI for one node (started by `gridmint net start`)."""
    start_logging("info")
    run_app(home, keep_recent, snapshot_interval)
