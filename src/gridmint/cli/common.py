"""What the chain-writing commands share: options, loading the signing key, sending and the receipt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gridmint.chain.crypto import PrivateKey, format_address, parse_address
from gridmint.chain.tx import Msg
from gridmint.cli.output import read_password
from gridmint.client.amounts import parse_mint
from gridmint.client.chain_client import ChainClient, TxOutcome, default_node_url
from gridmint.client.keyfile import read_public
from gridmint.client.wallet import Wallet, open_wallet


class MintAmount(click.ParamType[int]):
    """An amount typed as MINT (``1.5``) or grains (``42grain``), checked where the command line is read."""

    name = "MINT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_mint(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


MINT_AMOUNT = MintAmount()

wallet_dir_option = click.option(
    "--wallet-dir", type=click.Path(path_type=Path), default=None,
    help="Where wallets live (default $GRIDMINT_WALLET_DIR or ~/.gridmint/wallets).")
node_option = click.option("--node", "node_url", default=None,
                           help="RPC address of a node (default $GRIDMINT_NODE or http://127.0.0.1:26657).")
password_option = click.option("--password-file", type=click.Path(exists=True, dir_okay=False), default=None,
                               help="Read the coldkey password from this file "
                                    "(else $GRIDMINT_PASSWORD, else a prompt).")
wallet_option = click.option("--wallet", "wallet_name", required=True, help="The wallet whose key signs.")
hotkey_option = click.option("--hotkey", default="default", show_default=True, help="The wallet's hotkey.")


def _allowed_endpoints(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from gridmint.inference.address_guard import parse_allowed

    for value in values:
        try:
            parse_allowed(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return values


allow_endpoint_option = click.option(
    "--allow-endpoint", "allow_endpoints", multiple=True, callback=_allowed_endpoints, metavar="IP:PORT",
    help="A miner address that may be reached although it is not public (loopback, private, link-local, ...); "
         "exact, repeat for each. Every other miner must resolve to public addresses.")


def listen_options(default_port: int) -> Callable[[Any], Any]:
    """A server's --host and --port, where it listens, and --external-url, where others reach it: the address it
    puts on chain (a gateway's, a miner's or a provider's)."""
    def apply(function: Any) -> Any:
        for option in (click.option("--external-url", default=None,
                                    help="The URL put on chain for others to reach (default http://HOST:PORT)."),
                       click.option("--port", type=int, default=default_port, show_default=True),
                       click.option("--host", default="127.0.0.1", show_default=True)):
            function = option(function)
        return function
    return apply


def signer_options(function: Any) -> Any:
    for option in (wallet_option, wallet_dir_option, node_option, password_option):
        function = option(function)
    return function


def coldkey(wallet_name: str, wallet_dir: Path | None, password_file: str | None) -> tuple[Wallet, PrivateKey]:
    wallet = open_wallet(wallet_name, wallet_dir)
    return wallet, wallet.coldkey(read_password(password_file))


def load_hotkey(wallet_name: str, hotkey_name: str, wallet_dir: Path | None, password_file: str | None) -> PrivateKey:
    wallet = open_wallet(wallet_name, wallet_dir)
    path = wallet.hotkey_path(hotkey_name)
    encrypted = path.exists() and "crypto" in read_public(path)
    return wallet.hotkey(hotkey_name, read_password(password_file, what="hotkey") if encrypted else None)


def resolve_hotkey(target: str, wallet_dir: Path | None) -> bytes:
    """A gm1 address, or ``wallet/hotkey`` (``wallet`` alone means its ``default`` hotkey)."""
    if target.startswith("gm1"):
        return parse_address(target)
    wallet_name, _, hotkey_name = target.partition("/")
    return parse_address(open_wallet(wallet_name, wallet_dir).hotkey_address(hotkey_name or "default"))


def send(node_url: str | None, key: PrivateKey, messages: list[Msg], memo: str = "") -> TxOutcome:
    """Sign with the chain's minimum fee, wait for the block, and raise the chain's error if it failed."""
    with ChainClient(node_url or default_node_url()) as client:
        return client.execute(key, messages, memo)


def receipt(outcome: TxOutcome, signer: PrivateKey) -> dict[str, Any]:
    return {"hash": outcome.hash, "height": outcome.height, "signer": format_address(signer.address),
            "events": outcome.events}
