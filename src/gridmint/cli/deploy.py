"""``gridmint deploy``: rent compute for a deployment file and manage the lease."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gridmint.chain.crypto import PrivateKey
from gridmint.chain.market import MsgCloseDeployment, MsgCloseLease, MsgTopUp
from gridmint.chain.units import format_mint
from gridmint.cli.common import MINT_AMOUNT, coldkey, node_option, receipt, send, signer_options
from gridmint.cli.output import emit
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.client.wallet import default_wallet_dir
from gridmint.market.deployment import parse_deployment
from gridmint.market.tenant import (
    NO_BIDS,
    Progress,
    ProviderClient,
    accept_bid,
    create_order,
    describe_hold,
    explain_match,
    for_lease,
    load_manifest,
    provider_uri,
    save_manifest,
    wait_for_bids,
    wait_running,
)


def _deployments_dir(wallet_dir: Path | None) -> Path:
    return (wallet_dir or default_wallet_dir()).parent / "deployments"


def _progress(ctx: click.Context) -> Progress:
    quiet = bool(ctx.find_root().params.get("json_output"))
    return lambda line: None if quiet else click.echo(f"… {line}", err=True)


@click.group()
def deploy() -> None:
    """Deployments: order compute, pick a bid, send the manifest, watch and close the lease."""


@deploy.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bid-wait", type=float, default=10.0, show_default=True,
              help="Seconds to wait for bids (less once every matching provider has bid).")
@click.option("--auto-accept", type=click.Choice(["none", "cheapest"]), default="none", show_default=True,
              help="Accept the cheapest bid at once, or stop after the bids (accept with `deploy accept`).")
@click.option("--start-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the services to run.")
@signer_options
@click.pass_context
def create(ctx: click.Context, file: Path, bid_wait: float, auto_accept: str, start_timeout: float, wallet_name: str,
           wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Order FILE and show the bids; with --auto-accept cheapest, also take the cheapest, send the manifest and
    wait until it runs."""
    progress = _progress(ctx)
    deployment = parse_deployment(file.read_text())
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url or default_node_url()) as client:
        fitting = [m for m in explain_match(client.query("/market/providers"), deployment) if m.fits]
        progress(f"{len(fitting)} registered provider{'s' if len(fitting) != 1 else ''} can serve {file.name}")
        order_id, height = create_order(client, key, deployment)
        save_manifest(_deployments_dir(wallet_dir), order_id, deployment.manifest, str(file))
        order = client.query(f"/market/order/{order_id}")
        progress(f"order {order_id} created in block {height} (max {format_mint(deployment.max_price)} per block, "
                 f"deposit {format_mint(deployment.deposit)}; {describe_hold(order)})")
        bids = wait_for_bids(client, order_id, max(1, len(fitting)), bid_wait, progress) if fitting else []
        result = {"order": order_id, "hold": int(order.get("hold", 0)), "bids": bids}
        if not bids:
            raise NO_BIDS(f"no provider bid on order {order_id} within {bid_wait:g} s; `gridmint market match "
                          f"{file}` says why each provider cannot serve it; the order stays open until it expires "
                          f"or `gridmint deploy close-order {order_id}`")
        if auto_accept == "none":
            emit(ctx, result, "\n".join(_bid_lines(bids)) + f"\nAccept one with: gridmint deploy accept {order_id} "
                                                             "PROVIDER")
            return
        best = bids[0]
        progress(f"accepting {best['provider']} at {format_mint(int(best['price']))} per block")
        lease_id = accept_bid(client, key, order_id, best["provider"])
        progress(f"lease {lease_id} started")
        status = _start(client, key, lease_id, best["provider"], deployment.manifest, start_timeout, progress)
    result.update(lease=lease_id, provider=best["provider"], status=status)
    emit(ctx, result, _running_summary(lease_id, status))


def _start(client: ChainClient, key: PrivateKey, lease_id: int, provider: str, manifest: dict[str, Any],
           timeout_s: float, progress: Progress) -> dict[str, Any]:
    host = provider_uri(client, provider)
    with ProviderClient(key, provider, host) as calls:
        calls.send_manifest(lease_id, manifest)
        progress(f"manifest sent to {host}")
        status = wait_running(calls, lease_id, timeout_s)
    progress("running")
    status["endpoints"] = {name: host + str(s["path"]) for name, s in status["services"].items()}
    return status


def _running_summary(lease_id: int, status: dict[str, Any]) -> str:
    endpoints = status.get("endpoints") or {}
    lines = [f"Lease {lease_id} is running."]
    lines += [f"  {name}: {url}" for name, url in endpoints.items()]
    lines.append(f"Logs: gridmint deploy logs {lease_id}    Close: gridmint deploy close {lease_id}")
    return "\n".join(lines)


def _bid_lines(bids: list[dict[str, Any]]) -> list[str]:
    return [f"{b['provider']}  {format_mint(int(b['price']))} per block" for b in bids] or ["No bids yet."]


@deploy.command()
@click.argument("order_id", type=int)
@node_option
@click.pass_context
def bids(ctx: click.Context, order_id: int, node_url: str | None) -> None:
    """The bids on ORDER_ID, cheapest first."""
    with ChainClient(node_url) as client:
        order = client.query(f"/market/order/{order_id}")
    ranked = sorted(order["bids"], key=lambda b: int(b["price"]))
    emit(ctx, ranked, f"Order {order_id} is {order['state']}.\n" + "\n".join(_bid_lines(ranked)))


@deploy.command()
@click.argument("order_id", type=int)
@click.argument("provider")
@click.option("--file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The deployment file (default: the manifest saved by `deploy create`).")
@click.option("--start-timeout", type=float, default=60.0, show_default=True)
@signer_options
@click.pass_context
def accept(ctx: click.Context, order_id: int, provider: str, file: Path | None, start_timeout: float,
           wallet_name: str, wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Accept PROVIDER's bid on ORDER_ID, send the manifest and wait until it runs."""
    manifest = parse_deployment(file.read_text()).manifest if file else \
        load_manifest(_deployments_dir(wallet_dir), order_id)
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url or default_node_url()) as client:
        lease_id = accept_bid(client, key, order_id, provider)
        status = _start(client, key, lease_id, provider, manifest, start_timeout, _progress(ctx))
    emit(ctx, {"order": order_id, "lease": lease_id, "status": status}, _running_summary(lease_id, status))


@deploy.command()
@click.argument("lease_id", type=int)
@signer_options
@click.pass_context
def status(ctx: click.Context, lease_id: int, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
           password_file: str | None) -> None:
    """The lease on chain (escrow left) and its services as the provider reports them."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url) as client:
        lease = client.query(f"/market/lease/{lease_id}")
        services = None
        if lease["open"]:
            with for_lease(client, key, lease_id) as calls:
                services = calls.status(lease_id)
    escrow = lease["escrow"]
    lines = [f"Lease {lease_id} with {lease['provider']} at {format_mint(int(lease['price']))} per block: "
             + (f"open, {format_mint(int(escrow['balance']))} left (runs out in block {escrow['exhaustion_block']})"
                if lease["open"] else f"closed ({escrow['reason']})")]
    for name, service in ((services or {}).get("services") or {}).items():
        lines.append(f"  {name}: {service['state']} {service['detail']}".rstrip())
    emit(ctx, {"lease": lease, "provider_status": services}, "\n".join(lines))


@deploy.command()
@click.argument("lease_id", type=int)
@click.option("--tail", type=int, default=200, show_default=True)
@signer_options
@click.pass_context
def logs(ctx: click.Context, lease_id: int, tail: int, wallet_name: str, wallet_dir: Path | None,
         node_url: str | None, password_file: str | None) -> None:
    """The last lines the lease's services wrote."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url) as client, for_lease(client, key, lease_id) as calls:
        text = calls.logs(lease_id, tail)
    emit(ctx, {"lease": lease_id, "logs": text}, text or "(no output yet)")


@deploy.command("top-up")
@click.argument("lease_id", type=int)
@click.argument("amount", type=MINT_AMOUNT)
@signer_options
@click.pass_context
def top_up(ctx: click.Context, lease_id: int, amount: int, wallet_name: str, wallet_dir: Path | None,
           node_url: str | None, password_file: str | None) -> None:
    """Add AMOUNT to the lease's escrow."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    outcome = send(node_url, key, [MsgTopUp(lease_id, amount)])
    emit(ctx, receipt(outcome, key), f"Added {format_mint(amount)} to lease {lease_id} in block {outcome.height}.")


@deploy.command()
@click.argument("lease_id", type=int)
@signer_options
@click.pass_context
def close(ctx: click.Context, lease_id: int, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
          password_file: str | None) -> None:
    """Close the lease: the provider is paid to this block and the rest of the deposit comes back."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    outcome = send(node_url, key, [MsgCloseLease(lease_id, 0)])
    paid, refunded = outcome.attribute("lease_closed", "paid"), outcome.attribute("lease_closed", "refunded")
    emit(ctx, receipt(outcome, key), f"Closed lease {lease_id} in block {outcome.height}: the provider was paid "
                                     f"{format_mint(int(paid or 0))}, {format_mint(int(refunded or 0))} came back.")


@deploy.command("close-order")
@click.argument("order_id", type=int)
@signer_options
@click.pass_context
def close_order(ctx: click.Context, order_id: int, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
                password_file: str | None) -> None:
    """Withdraw an order that has no lease yet: the deposit comes back and bidders get theirs, each paid its share
    of the hold deposit; the rest of the hold comes back."""
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    outcome = send(node_url, key, [MsgCloseDeployment(order_id)])
    paid = int(outcome.attribute("order_closed", "hold_paid") or 0)
    returned = int(outcome.attribute("order_closed", "hold_returned") or 0)
    emit(ctx, receipt(outcome, key), f"Closed order {order_id} in block {outcome.height}; its deposit came back, "
                                     f"and of its hold deposit {format_mint(paid)} went to its bidders and "
                                     f"{format_mint(returned)} came back.")
