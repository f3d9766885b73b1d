"""``gridmint genesis export``: a node's committed state at a height, as a genesis that starts a chain there.

The export holds every module's complete state (chain/records.py) and every account's nonce; ``init_chain`` from it
gives the app hash the old chain had at that height. It reads the node's state file directly (a running node keeps
writing it: SQLite's WAL lets this read alongside), so it needs the data directory, not the RPC.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from gridmint.chain.app import App
from gridmint.chain.errors import HEIGHT_UNAVAILABLE, ChainError
from gridmint.chain.genesis import write_genesis
from gridmint.chain.store import Store
from gridmint.cli.node import data_dir_option
from gridmint.cli.output import emit

# Where a node keeps the app's state: a devnode's data directory, or a `gridmint net` node's home.
STATE_FILES = ("state.sqlite", "app/state.sqlite")


@click.group()
def genesis() -> None:
    """Genesis files: export a chain's state to start a chain from it."""


def find_state_file(data_dir: Path) -> Path:
    for name in STATE_FILES:
        if (data_dir / name).is_file():
            return data_dir / name
    raise click.BadParameter(f"no chain state in {data_dir} (looked for {', '.join(STATE_FILES)})",
                             param_hint="--data-dir")


def block_time(data_dir: Path, height: int) -> str | None:
    """Block ``height``'s header time from a devnode's block log, as RFC 3339; None where there is none."""
    if not (data_dir / "blocks.sqlite").is_file():
        return None
    from gridmint.node.blockstore import BlockStore
    from gridmint.node.rpc import rfc3339

    try:  # read as it is: an export neither converts the log nor needs any block's results
        blocks = BlockStore.read_only(data_dir / "blocks.sqlite")
        try:
            block = blocks.block(height)
        finally:
            blocks.close()
    except (sqlite3.Error, ChainError):  # no block log to speak of: the time comes from elsewhere
        return None
    return None if block is None else rfc3339(block.header.time_ns)


@genesis.command("export")
@data_dir_option
@click.option("--height", type=click.IntRange(min=1), default=None,
              help="The committed height to export (default: the latest). Where this node has pruned it, the "
                   "latest height is exported instead, and the output says so.")
@click.option("--genesis-time", default=None,
              help="The new chain's genesis time, RFC 3339 (default: the exported block's time where the block "
                   "log has it, else now).")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="File to write; - for stdout.")
@click.pass_context
def export(ctx: click.Context, data_dir: Path, height: int | None, genesis_time: str | None, output: Path) -> None:
    """Write the committed state at a height as a genesis whose chain starts at the next height."""
    store = Store(find_state_file(data_dir))
    try:
        app = App(store)
        if store.height == 0:
            raise click.BadParameter(f"the chain in {data_dir} has no committed block yet", param_hint="--data-dir")
        note = ""
        if height is not None and height < store.earliest_height:
            note = (f"height {height} was pruned (this node keeps heights from {store.earliest_height}); "
                    f"exported the latest height, {store.height}, instead")
            height = None
        exported_height = store.height if height is None else height
        if height is not None and height > store.height:
            raise HEIGHT_UNAVAILABLE(f"height {height} is not committed; the latest is {store.height}")
        time = genesis_time or block_time(data_dir, exported_height) or datetime.now(UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        document = app.export_genesis(time, None if exported_height == store.height else exported_height)
    finally:
        store.close()
    if str(output) == "-":
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        if note:
            click.echo(note, err=True)
        return
    write_genesis(output, document)
    sections = sorted(name for name, section in document["app_state"].items() if section)
    lines = [f"Exported chain {document['chain_id']} at height {exported_height} to {output}: "
             f"{len(sections)} sections; a chain started from it begins at height {document['initial_height']}."]
    if note:
        lines.insert(0, note)
    emit(ctx, {"chain_id": document["chain_id"], "height": exported_height, "output": str(output),
               "initial_height": int(document["initial_height"]), "genesis_time": time, "note": note},
         "\n".join(lines))
