"""``gridmint demo``: the main job for now — a devnode with a dev genesis, two wallets, a transfer, balances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from gridmint.chain import bank
from gridmint.chain.crypto import parse_address
from gridmint.chain.errors import ChainError
from gridmint.chain.units import format_mint
from gridmint.cli.common import MINT_AMOUNT
from gridmint.cli.output import emit
from gridmint.client.amounts import parse_mint
from gridmint.client.chain_client import ChainClient
from gridmint.client.errors import NODE_UNREACHABLE
from gridmint.client.wallet import create_wallet
from gridmint.node.setup import init_data_dir
from gridmint.ports import free_port

DEMO_PASSWORD = "demo-only-password"  # the demo's wallets live in a throwaway folder  # noqa: S105


def _step(text: str) -> None:
    click.echo(click.style("==> ", fg="green") + text, err=True)


@click.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=None,
              help="Keep the node's data and the wallets here (default: a temporary folder).")
@click.option("--amount", type=MINT_AMOUNT, default="12.5", show_default=True, help="MINT that alice sends to bob.")
@click.pass_context
def demo(ctx: click.Context, workdir: Path | None, amount: int) -> None:
    """Start a devnode, create wallets alice and bob, send a transfer and show both balances."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="gridmint-demo-"))
    data_dir, wallet_dir = workdir / "node", workdir / "wallets"
    grains = amount

    _step(f"Creating wallets alice and bob in {wallet_dir} (coldkeys encrypted with Argon2id)")
    alice, _ = create_wallet("alice", DEMO_PASSWORD, wallet_dir)
    bob, _ = create_wallet("bob", DEMO_PASSWORD, wallet_dir)

    _step("Writing a dev genesis that funds alice with 1000 MINT")
    authority = init_data_dir(data_dir, "gridmint-demo", [(alice.address, parse_mint("1000"))], force=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _step(f"Starting the devnode (authority {authority}) with RPC on {url}")
    log_file = (workdir / "devnode.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir", str(data_dir),
         "--block-time", "0.5", "--rpc-laddr", f"127.0.0.1:{port}"],
        stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        with ChainClient(url) as client:
            _wait_until_ready(client, process)
            _step(f"Sending {format_mint(grains)} from alice to bob")
            key = alice.coldkey(DEMO_PASSWORD)
            outcome = client.send(key, [bank.MsgSend(parse_address(bob.address), grains)], memo="gridmint demo")
            balances = {"alice": client.balance(alice.address), "bob": client.balance(bob.address)}
            height = client.height()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()
    summary = (f"Transfer {outcome.hash[:16]}… committed in block {outcome.height} "
               f"({'ok' if outcome.ok else outcome.log}).\n"
               f"  alice {alice.address}: {format_mint(balances['alice'])}\n"
               f"  bob   {bob.address}: {format_mint(balances['bob'])}\n"
               f"Chain gridmint-demo reached height {height}; data and node log in {workdir}.")
    emit(ctx, {"tx": outcome.hash, "height": outcome.height, "code": outcome.code, "balances": balances,
               "addresses": {"alice": alice.address, "bob": bob.address}, "workdir": str(workdir)}, summary)
    if not outcome.ok:
        sys.exit(1)


def _wait_until_ready(client: ChainClient, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise NODE_UNREACHABLE(f"the devnode exited with code {process.returncode}; see its log")
        try:
            if client.height() >= 1:
                return
        except ChainError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
