"""``gridmint gateway`` (run one, get an API key) and ``gridmint credit`` (a consumer's credit lines)."""

from __future__ import annotations

from pathlib import Path

import click

from gridmint.chain.credit import MsgCloseCredit, MsgOpenCredit, MsgReclaimCredit, MsgTopUpCredit
from gridmint.chain.crypto import format_address, parse_address
from gridmint.chain.units import format_mint
from gridmint.cli.common import (
    MINT_AMOUNT,
    allow_endpoint_option,
    coldkey,
    listen_options,
    node_option,
    password_option,
    receipt,
    send,
    signer_options,
    wallet_dir_option,
)
from gridmint.cli.output import emit, log_level_option, start_logging
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.client.credit_audit import Paid, audit_line, fetch_usage, read_own_costs
from gridmint.client.wallet import open_wallet
from gridmint.gateway.keys import gateway_at, request_api_key
from gridmint.gateway.server import build_gateway, register_gateway, serve_gateway


@click.group()
def gateway() -> None:
    """The OpenAI-compatible gateway: run one, or get an API key from one."""


@gateway.command()
@listen_options(8080)
@click.option("--fee-bps", type=click.IntRange(0, 10_000), default=100, show_default=True,
              help="The gateway's fee in basis points of what miners earn.")
@click.option("--bond", type=MINT_AMOUNT, default="0", help="Bond to hold (default: the chain's minimum).")
@click.option("--rate", type=float, default=100.0, show_default=True, help="Requests per second per API key.")
@click.option("--burst", type=int, default=200, show_default=True)
@click.option("--settle-seconds", type=float, default=30.0, show_default=True)
@click.option("--sync-seconds", type=float, default=5.0, show_default=True, help="Miner directory refresh period.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Per-miner time limit.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("gateway-data"),
              show_default=True, help="API keys and the usage ledger (SQLite).")
@click.option("--wallet", "wallet_name", required=True, help="The wallet whose coldkey is the gateway.")
@wallet_dir_option
@node_option
@password_option
@allow_endpoint_option
@log_level_option
def run(host: str, port: int, external_url: str | None, fee_bps: int, bond: int, rate: float, burst: int,
        settle_seconds: float, sync_seconds: float, timeout_s: float, data_dir: Path, wallet_name: str,
        wallet_dir: Path | None, node_url: str | None, password_file: str | None, allow_endpoints: tuple[str, ...],
        log_level: str) -> None:
    """Register the gateway on chain and serve the OpenAI API, routing to the best-ranked miners."""
    start_logging(log_level)
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    client = ChainClient(node_url or default_node_url())
    fee = register_gateway(client, key, external_url or f"http://{host}:{port}", fee_bps, bond)
    app = build_gateway(key, client, data_dir, fee, rate, burst, settle_seconds, sync_seconds, timeout_s,
                        allow_endpoints)
    try:
        serve_gateway(app, host, port)
    finally:
        client.close()


@gateway.command()
@click.option("--gateway", "gateway_url", required=True, help="The gateway's URL, e.g. http://127.0.0.1:8080.")
@click.option("--wallet", "wallet_name", required=True, help="The consumer's wallet (its coldkey proves ownership).")
@wallet_dir_option
@node_option
@password_option
@click.pass_context
def key(ctx: click.Context, gateway_url: str, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
        password_file: str | None) -> None:
    """Get an API key bound to the wallet's account (sign the gateway's challenge, only for the gateway the chain
    lists at that URL)."""
    wallet, private = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url) as client:
        expected = gateway_at(client, gateway_url)
    api_key = request_api_key(gateway_url, private, expected)
    emit(ctx, {"api_key": api_key, "address": wallet.address, "base_url": gateway_url.rstrip("/") + "/v1"},
         f"API key for {wallet.address}:\n{api_key}\nUse it with any OpenAI client: base_url="
         f"{gateway_url.rstrip('/')}/v1")


def _gateway_address(client: ChainClient, target: str) -> bytes:
    """A gateway named by its gm1 address or by the URL it registered."""
    if target.startswith("gm1"):
        return parse_address(target)
    for entry in client.query("/credit/gateways"):
        if entry["url"].rstrip("/") == target.rstrip("/"):
            return parse_address(entry["gateway"])
    raise click.BadParameter(f"no gateway registered at {target}; `gridmint credit gateways` lists them")


DEFAULT_MAX_PRICE = "0.01"  # MINT per 1k tokens: ten times what `make up`'s miners ask


@click.group()
def credit() -> None:
    """A consumer's credit lines with gateways."""


@credit.command()
@node_option
@click.pass_context
def gateways(ctx: click.Context, node_url: str | None) -> None:
    """Gateways registered on chain."""
    with ChainClient(node_url) as client:
        rows = client.query("/credit/gateways")
    emit(ctx, rows, "\n".join(f"{g['gateway']}  {g['url']}  fee {g['fee_bps']} bps" for g in rows)
         or "No gateway has registered yet.")


@credit.command("open")
@click.argument("gateway_name", metavar="GATEWAY")
@click.argument("amount", type=MINT_AMOUNT)
@click.option("--blocks", type=int, default=100_000, show_default=True, help="Blocks until the line expires.")
@click.option("--max-price", type=MINT_AMOUNT, default=DEFAULT_MAX_PRICE, show_default=True,
              help="The most the line pays a miner per 1k tokens, in MINT; the gateway routes only to miners at or "
                   "below it and the chain refuses any settlement above it.")
@click.option("--max-fee-bps", type=click.IntRange(0, 10_000), default=None,
              help="The highest gateway fee you accept (default: the fee it registered now). The line keeps the fee "
                   "it has when the line opens; a later change applies to new lines only.")
@click.option("--cap", type=MINT_AMOUNT, default="0", help="The most the line may pay per period (0: no cap).")
@click.option("--cap-blocks", type=int, default=0, help="The period of --cap, in blocks.")
@signer_options
@click.pass_context
def open_line(ctx: click.Context, gateway_name: str, amount: int, blocks: int, max_price: int,
              max_fee_bps: int | None, cap: int, cap_blocks: int, wallet_name: str, wallet_dir: Path | None,
              node_url: str | None, password_file: str | None) -> None:
    """Lock AMOUNT as credit with GATEWAY (its gm1 address or URL), on terms the line keeps for its life."""
    if bool(cap) != bool(cap_blocks):
        raise click.BadParameter("--cap and --cap-blocks go together (a cap per period of so many blocks)")
    _, key_ = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url) as client:
        target = _gateway_address(client, gateway_name)
        if max_fee_bps is None:
            max_fee_bps = next(int(g["fee_bps"]) for g in client.query("/credit/gateways")
                               if parse_address(g["gateway"]) == target)
    outcome = send(node_url, key_, [MsgOpenCredit(target, amount, blocks, max_price, max_fee_bps, cap, cap_blocks)])
    line = outcome.created().get("line")
    emit(ctx, {**receipt(outcome, key_), "line": line}, f"Opened credit line {line} of "
                                      f"{format_mint(amount)} in block {outcome.height} at a fee of "
                                      f"{outcome.attribute('credit_opened', 'fee_bps')} bps and at most "
                                      f"{format_mint(max_price)} per 1k tokens; it expires in block "
                                      f"{outcome.attribute('credit_opened', 'expires')}.")


@credit.command("top-up")
@click.argument("gateway_name", metavar="GATEWAY")
@click.argument("amount", type=MINT_AMOUNT)
@click.option("--extend", type=int, default=0, show_default=True, help="Blocks added to the expiry.")
@signer_options
@click.pass_context
def top_up(ctx: click.Context, gateway_name: str, amount: int, extend: int, wallet_name: str,
           wallet_dir: Path | None, node_url: str | None, password_file: str | None) -> None:
    """Add AMOUNT to the credit line with GATEWAY."""
    _, key_ = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url) as client:
        target = _gateway_address(client, gateway_name)
    outcome = send(node_url, key_, [MsgTopUpCredit(target, amount, extend)])
    emit(ctx, receipt(outcome, key_), f"Added {format_mint(amount)} in block {outcome.height}; the line expires in "
                                      f"block {outcome.attribute('credit_topped_up', 'expires')}.")


@credit.command()
@click.option("--wallet", "wallet_name", required=True)
@wallet_dir_option
@node_option
@click.pass_context
def status(ctx: click.Context, wallet_name: str, wallet_dir: Path | None, node_url: str | None) -> None:
    """The wallet's credit lines: balance, spent, expiry."""
    address = open_wallet(wallet_name, wallet_dir).address
    with ChainClient(node_url) as client:
        lines = client.query(f"/credit/lines/{address}")
    emit(ctx, lines, "\n".join(f"{line['gateway']}: {format_mint(int(line['balance']))} left, "
                               f"{format_mint(int(line['spent']))} spent, expires in block {line['expires']}"
                               for line in lines) or f"{address} has no credit line.")


@credit.command()
@click.argument("gateway_name", metavar="GATEWAY")
@signer_options
@click.pass_context
def close(ctx: click.Context, gateway_name: str, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
          password_file: str | None) -> None:
    """Close the line with GATEWAY early: after the chain's notice period (time for the gateway to settle what
    you used), `gridmint credit reclaim` returns what is left."""
    _, key_ = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url) as client:
        target = _gateway_address(client, gateway_name)
    outcome = send(node_url, key_, [MsgCloseCredit(target)])
    free_at = outcome.attribute("credit_closing", "reclaimable_from")
    emit(ctx, receipt(outcome, key_), f"The line is closing: reclaim what is left from block {free_at} with "
                                      "`gridmint credit reclaim`.")


@credit.command()
@click.argument("gateway_name", metavar="GATEWAY")
@signer_options
@click.pass_context
def reclaim(ctx: click.Context, gateway_name: str, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
            password_file: str | None) -> None:
    """Take back what is left of an expired line (after the gateway's settlement grace) or a closed one (after
    the close notice)."""
    _, key_ = coldkey(wallet_name, wallet_dir, password_file)
    with ChainClient(node_url) as client:
        target = _gateway_address(client, gateway_name)
    outcome = send(node_url, key_, [MsgReclaimCredit(target)])
    amount = int(outcome.attribute("credit_reclaimed", "amount") or 0)
    emit(ctx, receipt(outcome, key_), f"Reclaimed {format_mint(amount)} in block {outcome.height}.")


@credit.command()
@click.argument("gateway_name", metavar="GATEWAY")
@click.option("--wallet", "wallet_name", required=True, help="The consumer's wallet (whose line is audited).")
@click.option("--api-key", envvar="GRIDMINT_API_KEY", required=True,
              help="Your API key at the gateway (default $GRIDMINT_API_KEY): it lists your usage records.")
@click.option("--records", "records_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Your own log of answers, JSON lines {\"request\": <x-gridmint-request>, "
                                 "\"cost\": <x-gridmint-cost>}, compared request by request.")
@wallet_dir_option
@node_option
@click.pass_context
def audit(ctx: click.Context, gateway_name: str, wallet_name: str, api_key: str, records_path: Path | None,
          wallet_dir: Path | None, node_url: str | None) -> None:
    """Compare what the chain paid from your line with GATEWAY against the gateway's records of your usage (and
    your own, with --records); exit status 1 when anything differs."""
    consumer = open_wallet(wallet_name, wallet_dir).address
    with ChainClient(node_url) as client:
        target = format_address(_gateway_address(client, gateway_name))
        url = next(str(g["url"]) for g in client.query("/credit/gateways") if g["gateway"] == target)
        line = client.query(f"/credit/line/{consumer}/{target}")
        paid = {str(p["miner"]): Paid(int(p["tokens"]), int(p["grains"]), int(p["requests"]))
                for p in client.query(f"/credit/paid/{line['id']}")}
    records = fetch_usage(url, api_key, int(line["id"]))
    own = read_own_costs(records_path) if records_path else None
    report = audit_line(int(line["id"]), records, paid, own)
    summary = (f"Line {report.line} with {target}: the chain paid {format_mint(report.settled_grains)} to "
               f"{report.miners} miner{'' if report.miners == 1 else 's'}; the gateway lists {report.records} request"
               f"{'' if report.records == 1 else 's'}.")
    if report.clean:
        human = summary + " Everything matches."
    else:
        human = "\n".join([summary, f"{len(report.differences)} differences:",
                           *(f"- {d.subject}: {d.what}" for d in report.differences)])
    emit(ctx, {"line": report.line, "gateway": target, "paid_grains": report.settled_grains,
               "records": report.records, "clean": report.clean,
               "differences": [{"subject": d.subject, "what": d.what} for d in report.differences]}, human)
    if not report.clean:
        ctx.exit(1)
