"""``gridmint miner run``: serve a model on a subnet; ``gridmint miner claim``: be paid what gateways acknowledged."""

from __future__ import annotations

from pathlib import Path

import click

from gridmint.chain.crypto import PrivateKey
from gridmint.chain.errors import ChainError
from gridmint.cli.common import (
    MINT_AMOUNT,
    coldkey,
    hotkey_option,
    listen_options,
    load_hotkey,
    node_option,
    password_option,
    wallet_dir_option,
)
from gridmint.cli.output import emit, fail, log_level_option, start_logging
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.client.metagraph import Metagraph
from gridmint.client.wallet import open_wallet
from gridmint.inference.backends.registry import BACKENDS, load_backend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.book import ReceiptBook, open_db
from gridmint.inference.miner.claims import CLAIMED, LINE_GONE, PAID, claim, review
from gridmint.inference.miner.runner import (
    Announcement,
    announce_if_changed,
    claim_forever,
    gateways_on_chain,
    keep_policy_in_step,
    policy_from_metagraph,
)
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import ALLOW_MODES, CallerPolicy


@click.group()
def miner() -> None:
    """Host a model on a subnet and earn by serving it."""


book_option = click.option(
    "--book", "book_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="SQLite file of what gateways were served and the receipts signed for them "
         "(default: miner/<hotkey>.db in the wallet's folder).")


def open_book(wallet_name: str, hotkey: str, wallet_dir: Path | None, book_file: Path | None, chain_id: str,
              key: PrivateKey) -> ReceiptBook:
    """The miner's book, kept beside its wallet unless told otherwise, as the wallet is what a miner moves."""
    path = book_file or open_wallet(wallet_name, wallet_dir).path / "miner" / f"{hotkey}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return ReceiptBook(open_db(str(path)), chain_id, key.address)


@miner.command()
@click.option("--netuid", type=int, required=True)
@click.option("--backend", type=click.Choice(BACKENDS), default="llama-cpp", show_default=True)
@click.option("--model", default=None, help="Model path for the backend (default: the backend's packaged model).")
@listen_options(8091)
@click.option("--price", "price_per_1k", type=MINT_AMOUNT, default="0", show_default=True,
              help="MINT per 1k tokens, announced on chain.")
@click.option("--max-concurrency", type=int, default=8, show_default=True)
@click.option("--allow", type=click.Choice(ALLOW_MODES), default="validators", show_default=True,
              help="Who may call: validators with a permit (and listed gateways), any registered hotkey, or any.")
@click.option("--gateway", "gateways", multiple=True, help="A gateway's hotkey address allowed to call.")
@click.option("--sync-seconds", type=float, default=12.0, show_default=True, help="Metagraph refresh period.")
@click.option("--no-announce", is_flag=True, help="Do not announce the endpoint on chain (local testing).")
@click.option("--claim-seconds", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Claim on chain, this often, receipts that gateways acknowledged and left unpaid this long "
                   "(the hotkey pays the fees; 0: never, use `gridmint miner claim`).")
@click.option("--wallet", "wallet_name", required=True)
@hotkey_option
@book_option
@wallet_dir_option
@node_option
@password_option
@log_level_option
def run(netuid: int, backend: str, model: str | None, host: str, port: int, external_url: str | None, price_per_1k: int,
        max_concurrency: int, allow: str, gateways: tuple[str, ...], sync_seconds: float, no_announce: bool,
        claim_seconds: float, wallet_name: str, hotkey: str, book_file: Path | None, wallet_dir: Path | None,
        node_url: str | None, password_file: str | None, log_level: str) -> None:
    """Load the model, announce the endpoint on chain, and serve signed OpenAI-shaped requests."""
    start_logging(log_level)
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    node = node_url or default_node_url()
    served = load_backend(backend, model)
    policy = CallerPolicy(allow=allow, gateways=set(gateways))
    with ChainClient(node) as client:
        chain_id = client.chain_id()  # receipts name it; the miner signs none for another chain
        if not no_announce:
            announce_if_changed(client, key, netuid, Announcement(external_url or f"http://{host}:{port}",
                                                                  served.models(), price_per_1k))
        policy_from_metagraph(Metagraph.fetch(client, netuid), policy)
        policy.chain_bonds = gateways_on_chain(client)
    book = open_book(wallet_name, hotkey, wallet_dir, book_file, chain_id, key)
    app = MinerApp(key, served, policy, max_concurrency=max_concurrency, book=book, price_per_1k=price_per_1k)
    app.background.append(lambda: keep_policy_in_step(app, node, netuid, sync_seconds))
    if claim_seconds:
        app.background.append(lambda: claim_forever(book, node, key, claim_seconds))
    try:
        serve_miner(app, host, port)
    finally:
        book.close()


@miner.command("claim")
@click.option("--wallet", "wallet_name", required=True)
@hotkey_option
@book_option
@click.option("--coldkey", "with_coldkey", is_flag=True,
              help="Sign the claims with the wallet's coldkey (its balance pays the fees) instead of the hotkey.")
@click.option("--dry-run", is_flag=True, help="Only say what is claimable; send nothing.")
@wallet_dir_option
@node_option
@password_option
@click.pass_context
def claim_command(ctx: click.Context, wallet_name: str, hotkey: str, book_file: Path | None, with_coldkey: bool,
                  dry_run: bool, wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Claim on chain the receipts gateways acknowledged and have not settled (paid from the line, then from the
    gateway's bond)."""
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    signer = coldkey(wallet_name, wallet_dir, password_file)[1] if with_coldkey and not dry_run else key
    try:
        with ChainClient(node_url or default_node_url()) as client:
            book = open_book(wallet_name, hotkey, wallet_dir, book_file, client.chain_id(), key)
            try:
                reviews = review(client, book)
                if not dry_run:
                    claim(client, signer, key.public_key, reviews)
            finally:
                book.close()
    except ChainError as error:
        fail(ctx, error)
    rows = [item.report() for item in reviews]
    lines = [f"line {r['line']} via {r['gateway']}: {r['state']} (receipt {r['grains']} grains, paid "
             f"{r['paid_grains']}){' at block ' + str(r['height']) if r['state'] == CLAIMED else ''}"
             f"{' — ' + r['error'] if r['error'] else ''}" for r in rows]
    claimable = sum(1 for item in reviews if item.state not in (PAID, LINE_GONE))
    emit(ctx, rows, "\n".join(lines) + f"\n{claimable} of {len(rows)} receipts were claimable."
         if rows else "No receipt signed yet on this chain.")
