"""``gridmint chain``: status, blocks and transactions as the node reports them."""

from __future__ import annotations

import base64

import click

from gridmint.cli.common import node_option
from gridmint.cli.output import emit
from gridmint.client.chain_client import ChainClient


@click.group()
def chain() -> None:
    """Look at the chain through a node's RPC."""


@chain.command()
@node_option
@click.pass_context
def status(ctx: click.Context, node_url: str | None) -> None:
    """Chain id, height, latest block and app hash."""
    with ChainClient(node_url) as client:
        answer = client.status()
    sync = answer["sync_info"]
    emit(ctx, answer, f"chain {answer['node_info']['network']} at height {sync['latest_block_height']} "
                      f"({sync['latest_block_time']})\n  block hash {sync['latest_block_hash']}\n"
                      f"  app hash   {sync['latest_app_hash']}")


@chain.command()
@click.argument("height", type=int, default=0)
@node_option
@click.pass_context
def block(ctx: click.Context, height: int, node_url: str | None) -> None:
    """A block by height (default: the latest)."""
    with ChainClient(node_url) as client:
        answer = client.block(height)
    header = answer["block"]["header"]
    emit(ctx, answer, f"block {header['height']} at {header['time']}: {len(answer['block']['data']['txs'])} txs\n"
                      f"  hash     {answer['block_id']['hash']}\n  proposer {header['proposer_address']}\n"
                      f"  app hash {header['app_hash']} (after the previous block)")


@chain.command()
@click.argument("tx_hash")
@node_option
@click.pass_context
def tx(ctx: click.Context, tx_hash: str, node_url: str | None) -> None:
    """A committed transaction by hash, with its result."""
    try:
        bytes.fromhex(tx_hash)
    except ValueError:
        raise click.BadParameter("expected the transaction hash as 64 hex characters") from None
    with ChainClient(node_url) as client:
        answer = client.tx(tx_hash)
    result = answer["tx_result"]
    outcome = "succeeded" if result["code"] == 0 else f"failed [{result['codespace']}/{result['code']}] {result['log']}"
    emit(ctx, answer, f"tx {answer['hash']} in block {answer['height']} (index {answer['index']}): {outcome}; "
                      f"{len(base64.b64decode(answer['tx']))} bytes")
