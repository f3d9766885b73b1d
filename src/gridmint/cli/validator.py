"""``gridmint validator run``: score a subnet's miners and submit weights every epoch."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click
import uvloop

from gridmint.chain.errors import ChainError
from gridmint.cli.common import (
    allow_endpoint_option,
    hotkey_option,
    load_hotkey,
    node_option,
    password_option,
    wallet_dir_option,
)
from gridmint.cli.output import log_level_option, start_logging
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.gateway.keys import gateway_at
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.prediction import PREDICTION, SOURCES, PredictionSettings, PredictionValidator
from gridmint.inference.validator.probes import ProbeGateway
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
@click.option("--probe-gateway", default=None, metavar="URL",
              help="Send every challenge through this gateway (registered on chain) as a consumer, so that miners "
                   "cannot tell probes from customers' requests; needs --probe-api-key.")
@click.option("--probe-api-key", envvar="GRIDMINT_PROBE_API_KEY", default=None, show_envvar=True,
              help="The API key of the account whose credit line at the probe gateway pays for the probes (get one "
                   "with `gridmint gateway key`, from an account other than this hotkey).")
@click.option("--series", type=click.Choice(SOURCES), default="hidden-regime", show_default=True,
              help="Prediction subnets: what miners forecast (a hidden-regime series drawn from future block hashes, "
                   "or GridMint's own demand read from chain events).")
@log_level_option
def run(netuid: int, interval: float, timeout: float, wallet_name: str, hotkey: str, wallet_dir: Path | None,
        node_url: str | None, password_file: str | None, allow_endpoints: tuple[str, ...], probe_gateway: str | None,
        probe_api_key: str | None, series: str, log_level: str) -> None:
    """Run rounds until interrupted; logs who was queried, their scores and the weights submitted."""
    start_logging(log_level)
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    node = node_url or default_node_url()
    if (probe_gateway is None) != (probe_api_key is None):
        raise click.UsageError("--probe-gateway and --probe-api-key go together")
    with ChainClient(node) as client:
        modality = client.query(f"/subnets/{netuid}")["modality"]
        try:
            probes = None if probe_gateway is None or probe_api_key is None else \
                ProbeGateway(probe_gateway, probe_api_key, gateway_at(client, probe_gateway))
        except ChainError as error:
            raise click.BadParameter(str(error), param_hint="--probe-gateway") from None
    if modality == PREDICTION:  # answers scored when their future comes, not as they arrive
        if probes is not None:
            raise click.UsageError("--probe-gateway is not supported on prediction subnets yet: their validator "
                                   "asks miners directly")
        worker: Validator = PredictionValidator(key, netuid, node, PredictionSettings(source=series),
                                                timeout_s=timeout, allow=allow_endpoints)
    else:
        worker = Validator(key, netuid, node, make_scorer(modality), timeout_s=timeout, allow=allow_endpoints,
                           probe_gateway=probes)
    logging.getLogger("gridmint.validator").info(
        "Validating subnet %d (%s) as %s, a round every %g s, %s.", netuid, modality, worker.address, interval,
        "asking miners directly" if probes is None else f"probing through the gateway at {probes.url} "
        f"({probes.address})")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(worker.run(interval))
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()
