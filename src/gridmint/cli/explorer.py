"""``gridmint explorer``: web pages to watch a chain (devnode or CometBFT node)."""

from __future__ import annotations

import logging

import click
import uvicorn

from gridmint.cli.common import node_option
from gridmint.cli.output import start_logging
from gridmint.client.chain_client import default_node_url
from gridmint.web.app import make_app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
@node_option
def explorer(host: str, port: int, node_url: str | None) -> None:
    """Serve the explorer for the node at --node (blocks, transactions, accounts, subnets, market, authorities)."""
    start_logging("info")
    node = node_url or default_node_url()
    logging.getLogger("gridmint.web").info("Explorer for %s at http://%s:%d/", node, host, port)
    uvicorn.run(make_app(node), host=host, port=port, log_level="warning", access_log=False)
