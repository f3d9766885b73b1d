"""``gridmint subnet``, ``gridmint stake``, ``gridmint weights`` and ``gridmint endpoint``."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import click

from gridmint.chain.crypto import format_address
from gridmint.chain.staking import MsgAddStake, MsgRemoveStake
from gridmint.chain.subnets import (
    MsgAnnounceEndpoint,
    MsgCreateSubnet,
    MsgDissolveSubnet,
    MsgRegister,
    MsgSetHyperparam,
)
from gridmint.chain.units import format_mint
from gridmint.chain.weights import MsgCommitWeights, MsgRevealWeights, MsgSetWeights, commit_hash
from gridmint.cli.common import (
    MINT_AMOUNT,
    coldkey,
    hotkey_option,
    load_hotkey,
    node_option,
    receipt,
    resolve_hotkey,
    send,
    signer_options,
    wallet_dir_option,
)
from gridmint.cli.output import emit
from gridmint.client.chain_client import ChainClient
from gridmint.client.metagraph import Metagraph
from gridmint.client.wallet import open_wallet


@click.group()
def subnet() -> None:
    """Subnets: create, tune, register on, and look at their metagraph."""


@subnet.command()
@click.option("--modality", required=True, help="text-generation, embedding, image-generation, ...")
@click.option("--name", required=True)
@signer_options
@click.pass_context
def create(ctx: click.Context, modality: str, name: str, wallet_name: str, wallet_dir: Path | None,
           node_url: str | None, password_file: str | None) -> None:
    """Create a subnet; its lock is taken from the wallet's coldkey and returned on dissolve."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    outcome = send(node_url, key, [MsgCreateSubnet(modality, name)])
    netuid, lock = outcome.created().get("netuid"), outcome.attribute("subnet_created", "lock")
    emit(ctx, {**receipt(outcome, key), "netuid": int(netuid or 0), "lock": int(lock or 0)},
         f"Created subnet {netuid} ({modality}) in block {outcome.height}; locked {format_mint(int(lock or 0))}.")


@subnet.command(name="list")
@node_option
@click.pass_context
def list_command(ctx: click.Context, node_url: str | None) -> None:
    """Every subnet with its owner, size and registration price."""
    with ChainClient(node_url) as client:
        rows = client.query("/subnets/list")
    lines = [f"{'netuid':>6}  {'modality':<18} {'name':<20} {'UIDs':>9}  {'price':>18}  owner"]
    lines += [f"{r['netuid']:>6}  {r['modality']:<18} {r['name'][:20]:<20} {r['n']:>4}/{r['params']['max_uids']:<4}  "
              f"{format_mint(r['registration_price']):>18}  {r['owner']}" for r in rows]
    emit(ctx, rows, "\n".join(lines) if rows else "No subnets yet; create one with `gridmint subnet create`.")


@subnet.command()
@click.argument("netuid", type=int)
@node_option
@click.pass_context
def show(ctx: click.Context, netuid: int, node_url: str | None) -> None:
    """A subnet's owner, lock, epoch and registration price."""
    with ChainClient(node_url) as client:
        info = client.query(f"/subnets/{netuid}")
    emit(ctx, info, "\n".join([
        f"subnet {netuid}: {info['name']} ({info['modality']})", f"  owner              {info['owner']}",
        f"  lock               {format_mint(info['lock'])}", f"  UIDs               {info['n']}",
        f"  epoch              {info['epoch']} (last at block {info['last_epoch']})",
        f"  registration price {format_mint(info['registration_price'])}"]))


@subnet.command()
@click.argument("netuid", type=int)
@node_option
@click.pass_context
def params(ctx: click.Context, netuid: int, node_url: str | None) -> None:
    """A subnet's hyperparameters."""
    with ChainClient(node_url) as client:
        values = client.query(f"/subnets/{netuid}")["params"]
    emit(ctx, values, "\n".join(f"{name:<22} {value}" for name, value in values.items()))


@subnet.command(name="set-param")
@click.argument("netuid", type=int)
@click.argument("param")
@click.argument("value", type=int)
@signer_options
@click.pass_context
def set_param(ctx: click.Context, netuid: int, param: str, value: int, wallet_name: str, wallet_dir: Path | None,
              node_url: str | None, password_file: str | None) -> None:
    """Change a hyperparameter (owner only; bounds are checked by the chain)."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    outcome = send(node_url, key, [MsgSetHyperparam(netuid, param, value)])
    emit(ctx, receipt(outcome, key), f"Subnet {netuid}: {param} = {value} from block {outcome.height}.")


@subnet.command()
@click.argument("netuid", type=int)
@signer_options
@click.pass_context
def dissolve(ctx: click.Context, netuid: int, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
             password_file: str | None) -> None:
    """Dissolve a subnet (owner only): stakes go back to stakers and the lock to the owner."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    outcome = send(node_url, key, [MsgDissolveSubnet(netuid)])
    emit(ctx, receipt(outcome, key), f"Dissolved subnet {netuid} in block {outcome.height}.")


@subnet.command(name="register")
@click.argument("netuid", type=int)
@hotkey_option
@click.option("--max-burn", type=MINT_AMOUNT, default=None, help="Refuse if the price is above this many MINT.")
@signer_options
@click.pass_context
def register_command(ctx: click.Context, netuid: int, hotkey: str, max_burn: int | None, wallet_name: str,
                     wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Register the wallet's hotkey on a subnet; the coldkey pays the burn."""
    wallet, key = coldkey(wallet_name, wallet_dir, password_file)
    target = resolve_hotkey(f"{wallet_name}/{hotkey}", wallet_dir)
    outcome = send(node_url, key, [MsgRegister(netuid, target, max_burn or 0)])
    uid, burn = outcome.created().get("uid"), outcome.attribute("neuron_registered", "burn")
    emit(ctx, {**receipt(outcome, key), "uid": int(uid or 0), "burn": int(burn or 0)},
         f"Registered {wallet.name}/{hotkey} ({format_address(target)}) on subnet {netuid} as UID {uid} "
         f"for {format_mint(int(burn or 0))}.")


@subnet.command()
@click.argument("netuid", type=int)
@click.option("--height", type=int, default=0, help="As of this height (default: the latest).")
@node_option
@click.pass_context
def metagraph(ctx: click.Context, netuid: int, height: int, node_url: str | None) -> None:
    """The subnet's UIDs as a table: stake, permits, consensus, incentive, dividends, emission, endpoints."""
    with ChainClient(node_url) as client:
        graph = Metagraph.fetch(client, netuid, height)
    rows = [{"uid": uid, "hotkey": graph.hotkeys[uid], "coldkey": graph.coldkeys[uid],
             **{name: int(graph.vectors[name][uid]) for name in graph.vectors}, "endpoint": graph.endpoints[uid]}
            for uid in range(graph.n)]
    header = (f"{'UID':>4} {'hotkey':<16} {'stake':>16} {'A':>1} {'V':>1} {'consensus':>9} {'trust':>7} "
              f"{'incentive':>9} {'dividends':>9} {'emission':>16}  endpoint")
    lines = [f"subnet {netuid} at block {graph.block}: {graph.n} UIDs", header]
    share = {name: graph.fraction(name) for name in ("consensus", "trust", "incentive", "dividends")}
    for uid in range(graph.n):
        served = graph.endpoints[uid]
        lines.append(
            f"{uid:>4} {graph.hotkeys[uid][:15]:<16} {format_mint(int(graph.stake[uid])):>16} "
            f"{int(graph.active[uid]):>1} {int(graph.permit[uid]):>1} {share['consensus'][uid]:>9.4f} "
            f"{share['trust'][uid]:>7.4f} {share['incentive'][uid]:>9.4f} {share['dividends'][uid]:>9.4f} "
            f"{format_mint(int(graph.emission[uid])):>16}  {served['url'] if served else '-'}")
    emit(ctx, {"netuid": netuid, "block": graph.block, "n": graph.n, "uids": rows}, "\n".join(lines))


# --- stake -------------------------------------------------------------------------------------------------


@click.group()
def stake() -> None:
    """Stake to a hotkey on a subnet (your own as a validator, or someone else's as a delegator)."""


@stake.command(name="add")
@click.argument("netuid", type=int)
@click.argument("target")
@click.argument("amount", type=MINT_AMOUNT)
@signer_options
@click.pass_context
def stake_add(ctx: click.Context, netuid: int, target: str, amount: int, wallet_name: str, wallet_dir: Path | None,
              node_url: str | None, password_file: str | None) -> None:
    """Stake AMOUNT MINT to TARGET (a gm1 hotkey address, or wallet/hotkey)."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    hot = resolve_hotkey(target, wallet_dir)
    outcome = send(node_url, key, [MsgAddStake(netuid, hot, amount)])
    emit(ctx, receipt(outcome, key), f"Staked {format_mint(amount)} to {format_address(hot)} on subnet {netuid}.")


@stake.command(name="remove")
@click.argument("netuid", type=int)
@click.argument("target")
@click.argument("amount", type=MINT_AMOUNT)
@signer_options
@click.pass_context
def stake_remove(ctx: click.Context, netuid: int, target: str, amount: int, wallet_name: str,
                 wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Unstake AMOUNT MINT from TARGET back to the coldkey's balance."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    hot = resolve_hotkey(target, wallet_dir)
    outcome = send(node_url, key, [MsgRemoveStake(netuid, hot, amount)])
    emit(ctx, receipt(outcome, key), f"Unstaked {format_mint(amount)} from {format_address(hot)} on subnet {netuid}.")


@stake.command(name="list")
@click.argument("owner")
@wallet_dir_option
@node_option
@click.pass_context
def stake_list(ctx: click.Context, owner: str, wallet_dir: Path | None, node_url: str | None) -> None:
    """Every stake of a coldkey (a gm1 address or a wallet name)."""
    address = owner if owner.startswith("gm1") else open_wallet(owner, wallet_dir).address
    with ChainClient(node_url) as client:
        rows = client.query(f"/staking/stakes/{address}")
    lines = [f"subnet {r['netuid']:>4}  {r['hotkey']}  {format_mint(r['amount'])}" for r in rows]
    emit(ctx, rows, "\n".join(lines) if lines else f"{address} has no stake.")


# --- weights -----------------------------------------------------------------------------------------------


def _parse_weights(_ctx: click.Context, _param: click.Parameter, pairs: tuple[str, ...]) -> tuple[list[int], list[int]]:
    """UID=WEIGHT pairs as the chain's two lists, checked where the command line is read."""
    uids, weights = [], []
    for pair in pairs:
        uid, sep, weight = pair.partition("=")
        if not sep or not uid.isdigit() or not weight.isdigit():
            raise click.BadParameter(f"'{pair}': expected UID=WEIGHT, such as 3=65535")
        uids.append(int(uid))
        weights.append(int(weight))
    return uids, weights


def _weights_arguments(command: Any) -> Any:
    """What `weights set` and `weights commit` both read: NETUID, the UID=WEIGHT pairs, and who signs."""
    for decorator in (click.pass_context, signer_options, hotkey_option,
                      click.argument("pairs", nargs=-1, required=True, callback=_parse_weights),
                      click.argument("netuid", type=int)):
        command = decorator(command)
    return command


def _commit_file(wallet_dir: Path | None, wallet_name: str, hotkey_name: str, netuid: int) -> Path:
    return open_wallet(wallet_name, wallet_dir).path / "commits" / f"{hotkey_name}-subnet-{netuid}.json"


@click.group()
def weights() -> None:
    """Validators' weights: set in the clear, or commit now and reveal after the reveal period."""


@weights.command(name="set")
@_weights_arguments
def weights_set(ctx: click.Context, netuid: int, pairs: tuple[list[int], list[int]], hotkey: str,
                wallet_name: str, wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Set weights UID=WEIGHT ... (subnets with commit-reveal off)."""
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    uids, values = pairs
    outcome = send(node_url, key, [MsgSetWeights(netuid, uids, values)])
    emit(ctx, receipt(outcome, key), f"Set {len(uids)} weights on subnet {netuid} in block {outcome.height}.")


@weights.command(name="commit")
@_weights_arguments
def weights_commit(ctx: click.Context, netuid: int, pairs: tuple[list[int], list[int]], hotkey: str,
                   wallet_name: str, wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Commit the hash of weights UID=WEIGHT ...; the weights and salt are kept in the wallet for the reveal."""
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    uids, values = pairs
    salt = secrets.token_bytes(32)
    outcome = send(node_url, key, [MsgCommitWeights(netuid, commit_hash(netuid, key.address, uids, values, salt))])
    path = _commit_file(wallet_dir, wallet_name, hotkey, netuid)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"uids": uids, "weights": values, "salt": salt.hex(), "height": outcome.height}, handle)
    emit(ctx, receipt(outcome, key), f"Committed weights on subnet {netuid} in block {outcome.height}; "
                                     f"reveal them after the reveal period with `gridmint weights reveal {netuid}`.")


@weights.command(name="reveal")
@click.argument("netuid", type=int)
@hotkey_option
@signer_options
@click.pass_context
def weights_reveal(ctx: click.Context, netuid: int, hotkey: str, wallet_name: str, wallet_dir: Path | None,
                   node_url: str | None, password_file: str | None) -> None:
    """Reveal the weights committed last with `gridmint weights commit`."""
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    path = _commit_file(wallet_dir, wallet_name, hotkey, netuid)
    if not path.exists():
        raise click.UsageError(f"no saved commit for subnet {netuid} in {path.parent}; commit first")
    saved = json.loads(path.read_text())
    outcome = send(node_url, key, [MsgRevealWeights(netuid, saved["uids"], saved["weights"],
                                                    bytes.fromhex(saved["salt"]))])
    path.unlink()
    emit(ctx, receipt(outcome, key), f"Revealed {len(saved['uids'])} weights on subnet {netuid}.")


# --- endpoint ----------------------------------------------------------------------------------------------


@click.group()
def endpoint() -> None:
    """Where a miner serves, announced on chain."""


@endpoint.command()
@click.argument("netuid", type=int)
@click.argument("url")
@click.option("--model", "models", multiple=True, help="A model served (repeatable).")
@click.option("--price", type=MINT_AMOUNT, default="0", help="Price per 1k tokens in MINT.")
@click.option("--protocol-version", default=1, show_default=True, type=int)
@hotkey_option
@signer_options
@click.pass_context
def announce(ctx: click.Context, netuid: int, url: str, models: tuple[str, ...], price: int, protocol_version: int,
             hotkey: str, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
             password_file: str | None) -> None:
    """Announce URL, models and price for the wallet's hotkey on a subnet."""
    key = load_hotkey(wallet_name, hotkey, wallet_dir, password_file)
    outcome = send(node_url, key, [MsgAnnounceEndpoint(netuid, url, list(models), price, protocol_version)])
    emit(ctx, receipt(outcome, key), f"Announced {url} on subnet {netuid} in block {outcome.height}.")
