"""``gridmint wallet``: create, list, show, restore, balance, transfer."""

from __future__ import annotations

from pathlib import Path

import click

from gridmint.chain import bank
from gridmint.chain.crypto import format_address, parse_address
from gridmint.chain.tx import Msg
from gridmint.chain.units import format_mint
from gridmint.cli.common import MINT_AMOUNT, node_option, password_option, wallet_dir_option
from gridmint.cli.output import emit, read_password
from gridmint.client.chain_client import ChainClient, default_node_url, raise_for_code
from gridmint.client.wallet import create_wallet, default_wallet_dir, list_wallets, open_wallet


@click.group()
def wallet() -> None:
    """Coldkeys (funds, encrypted) and hotkeys (operational identities)."""


@wallet.command()
@click.argument("name")
@click.option("--hotkey", default="default", show_default=True, help="Name of the first hotkey.")
@wallet_dir_option
@password_option
@click.pass_context
def create(ctx: click.Context, name: str, hotkey: str, wallet_dir: Path | None, password_file: str | None) -> None:
    """Create a wallet: an encrypted coldkey and one hotkey. Write down the mnemonic it prints."""
    password = read_password(password_file, confirm=True)
    created, words = create_wallet(name, password, wallet_dir, hotkey=hotkey)
    emit(ctx, {"name": name, "address": created.address, "mnemonic": words, "hotkeys": created.hotkeys()},
         f"Created wallet '{name}' with address {created.address}.\n"
         f"Mnemonic (the only backup of this coldkey; keep it offline):\n  {words}")


@wallet.command(name="new-hotkey")
@click.argument("name")
@click.argument("hotkey")
@click.option("--encrypt", is_flag=True, help="Encrypt the hotkey with a password too (a daemon then needs it).")
@wallet_dir_option
@password_option
@click.pass_context
def new_hotkey(ctx: click.Context, name: str, hotkey: str, encrypt: bool, wallet_dir: Path | None,
               password_file: str | None) -> None:
    """Add a hotkey (an operational identity for a miner or validator) to wallet NAME."""
    owner = open_wallet(name, wallet_dir)
    owner.address  # noqa: B018 - raises wallet/not_found for a wallet that does not exist
    password = read_password(password_file, confirm=True, what="hotkey") if encrypt else None
    key, words = owner.add_hotkey(hotkey, password=password)
    address = format_address(key.address)
    emit(ctx, {"wallet": name, "hotkey": hotkey, "address": address, "mnemonic": words, "encrypted": encrypt},
         f"Added hotkey '{hotkey}' to wallet '{name}' at {address}.\nMnemonic (backup of this hotkey):\n  {words}")


@wallet.command()
@click.argument("name")
@click.option("--mnemonic", "words", default=None, help="The 24 words (else a prompt).")
@wallet_dir_option
@password_option
@click.pass_context
def restore(ctx: click.Context, name: str, words: str | None, wallet_dir: Path | None,
            password_file: str | None) -> None:
    """Restore a wallet's coldkey from its mnemonic."""
    if words is None:
        words = str(click.prompt("Mnemonic", hide_input=True))
    password = read_password(password_file, confirm=True)
    restored, _ = create_wallet(name, password, wallet_dir, words=words, hotkey=None)
    emit(ctx, {"name": name, "address": restored.address}, f"Restored wallet '{name}' at {restored.address}.")


@wallet.command(name="list")
@wallet_dir_option
@click.pass_context
def list_command(ctx: click.Context, wallet_dir: Path | None) -> None:
    """List wallets and their addresses."""
    wallets = list_wallets(wallet_dir)
    rows = [{"name": w.name, "address": w.address, "hotkeys": w.hotkeys()} for w in wallets]
    where = wallet_dir or default_wallet_dir()
    human = "\n".join(f"{r['name']:<20} {r['address']}  hotkeys: {', '.join(r['hotkeys']) or '-'}" for r in rows)
    emit(ctx, rows, human or f"No wallets in {where}; create one with `gridmint wallet create NAME`.")


@wallet.command()
@click.argument("name")
@wallet_dir_option
@click.pass_context
def show(ctx: click.Context, name: str, wallet_dir: Path | None) -> None:
    """Show a wallet's coldkey address and hotkeys (no password needed)."""
    shown = open_wallet(name, wallet_dir)
    hotkeys = {hot: shown.hotkey_address(hot) for hot in shown.hotkeys()}
    lines = [f"wallet {name}", f"  coldkey  {shown.address}"] + [f"  hotkey   {h:<12} {a}" for h, a in hotkeys.items()]
    emit(ctx, {"name": name, "address": shown.address, "hotkeys": hotkeys}, "\n".join(lines))


def resolve_address(target: str, wallet_dir: Path | None) -> str:
    """A gm1 address as given, or the coldkey address of a wallet by name."""
    if target.startswith("gm1"):
        parse_address(target)
        return target
    return open_wallet(target, wallet_dir).address


@wallet.command()
@click.argument("target")
@wallet_dir_option
@node_option
@click.pass_context
def balance(ctx: click.Context, target: str, wallet_dir: Path | None, node_url: str | None) -> None:
    """Balance of a wallet (by name) or of an address."""
    address = resolve_address(target, wallet_dir)
    with ChainClient(node_url or default_node_url()) as client:
        grains = client.balance(address)
    emit(ctx, {"address": address, "balance": grains}, f"{target}: {format_mint(grains)} ({address})")


@wallet.command()
@click.argument("name")
@click.argument("to")
@click.argument("amount", type=MINT_AMOUNT)
@click.option("--fee", type=MINT_AMOUNT, default=None, help="Fee in MINT (default: what the chain requires).")
@click.option("--memo", default="", help="A note stored with the transaction.")
@wallet_dir_option
@node_option
@password_option
@click.pass_context
def transfer(ctx: click.Context, name: str, to: str, amount: int, fee: int | None, memo: str,
             wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Send AMOUNT MINT from wallet NAME to TO (an address or a wallet name) and wait for the block."""
    recipient = resolve_address(to, wallet_dir)
    grains, fee_grains = amount, fee
    sender = open_wallet(name, wallet_dir)
    key = sender.coldkey(read_password(password_file))
    messages: list[Msg] = [bank.MsgSend(parse_address(recipient), grains)]
    with ChainClient(node_url or default_node_url()) as client:
        if fee_grains is None:
            fee_grains = client.required_fee(messages, memo)
        outcome = client.send(key, messages, fee_grains, memo)
    if not outcome.ok:
        raise_for_code(outcome.code, outcome.codespace, outcome.log)
    emit(ctx, {"hash": outcome.hash, "height": outcome.height, "from": sender.address, "to": recipient,
               "amount": grains, "fee": fee_grains},
         f"Sent {format_mint(grains)} from {name} to {recipient} in block {outcome.height} "
         f"(fee {format_mint(fee_grains)}, tx {outcome.hash}).")
