"""``gridmint validator run``: score a subnet's miners and submit weights every epoch."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click
import uvloop

from gridmint.cli.common import (
    allow_endpoint_option,
    hotkey_option,
    load_hotkey,
    node_option,
    password_option,
    wallet_dir_option,
)
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.scoring import make_scorer


@click.group()
def validator() -> None:
    """Validate a subnet: challenge miners, score them, set weights."""


@validator.command()
@click.option("--netuid", type=int, required=True)
@click.option("--interval", type=float, default=12.0, show_default=True, help="Seconds between rounds.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds a miner has to answer.")
@click.option("--wallet", "wallet_name", required=True)
@hotkey_option
@wallet_dir_option
@node_option
@password_option
@allow_endpoint_option
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]), show_default=True)
def run(netuid: int, interval: float, timeout: float, wallet_name: str, hotkey: str, wallet_dir: Path | None,
        node_url: str | None, password_file: str | None, allow_endpoints: tuple[str, ...], log_level: str) -> None:
    """Run rounds until interrupted; logs who was queried, their scores and the weights submitted."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    node = node_url or default_node_url()
    with ChainClient(node) as client:
        modality = client.query(f"/subnets/{netuid}")["modality"]
    worker = Validator(key, netuid, node, make_scorer(modality), timeout_s=timeout, allow=allow_endpoints)
    logging.getLogger("gridmint.validator").info(
        "Validating subnet %d (%s) as %s, a round every %g s.", netuid, modality, worker.address, interval)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(worker.run(interval))
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()
