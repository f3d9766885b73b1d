"""``gridmint miner run``: serve a model on a subnet."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from gridmint.cli.common import MINT_AMOUNT, hotkey_option, load_hotkey, node_option, password_option, wallet_dir_option
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.client.metagraph import Metagraph
from gridmint.inference.backends.registry import BACKENDS, load_backend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.runner import (
    Announcement,
    announce_if_changed,
    gateways_on_chain,
    keep_policy_in_step,
    policy_from_metagraph,
)
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import ALLOW_MODES, CallerPolicy


@click.group()
def miner() -> None:
    """Host a model on a subnet and earn by serving it."""


@miner.command()
@click.option("--netuid", type=int, required=True)
@click.option("--backend", type=click.Choice(BACKENDS), default="llama-cpp", show_default=True)
@click.option("--model", default=None, help="Model path for the backend (default: the backend's packaged model).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8091, show_default=True)
@click.option("--external-url", default=None, help="URL announced on chain (default http://HOST:PORT).")
@click.option("--price", "price_per_1k", type=MINT_AMOUNT, default="0", show_default=True,
              help="MINT per 1k tokens, announced on chain.")
@click.option("--max-concurrency", type=int, default=8, show_default=True)
@click.option("--allow", type=click.Choice(ALLOW_MODES), default="validators", show_default=True,
              help="Who may call: validators with a permit (and listed gateways), any registered hotkey, or any.")
@click.option("--gateway", "gateways", multiple=True, help="A gateway's hotkey address allowed to call.")
@click.option("--sync-seconds", type=float, default=12.0, show_default=True, help="Metagraph refresh period.")
@click.option("--no-announce", is_flag=True, help="Do not announce the endpoint on chain (local testing).")
@click.option("--wallet", "wallet_name", required=True)
@hotkey_option
@wallet_dir_option
@node_option
@password_option
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]), show_default=True)
def run(netuid: int, backend: str, model: str | None, host: str, port: int, external_url: str | None, price_per_1k: int,
        max_concurrency: int, allow: str, gateways: tuple[str, ...], sync_seconds: float, no_announce: bool,
        wallet_name: str, hotkey: str, wallet_dir: Path | None, node_url: str | None, password_file: str | None,
        log_level: str) -> None:
    """Load the model, announce the endpoint on chain, and serve signed OpenAI-shaped requests."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per chain call would drown the sentences
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    node = node_url or default_node_url()
    served = load_backend(backend, model)
    policy = CallerPolicy(allow=allow, gateways=set(gateways))
    app = MinerApp(key, served, policy, max_concurrency=max_concurrency,
                   background=[lambda: keep_policy_in_step(app, node, netuid, sync_seconds)])
    with ChainClient(node) as client:
        if not no_announce:
            announce_if_changed(client, key, netuid, Announcement(external_url or f"http://{host}:{port}",
                                                                  served.models(), price_per_1k))
        policy_from_metagraph(Metagraph.fetch(client, netuid), policy)
        policy.chain_gateways = gateways_on_chain(client)
    serve_miner(app, host, port)
