"""``gridmint market``: providers on chain, and which of them can serve a deployment file."""

from __future__ import annotations

from pathlib import Path

import click

from gridmint.cli.common import node_option
from gridmint.cli.output import emit
from gridmint.client.chain_client import ChainClient
from gridmint.market.deployment import parse_deployment
from gridmint.market.tenant import explain_match


@click.group()
def market() -> None:
    """The compute market: providers and matching."""


@market.command()
@node_option
@click.pass_context
def providers(ctx: click.Context, node_url: str | None) -> None:
    """Registered providers with their resources."""
    with ChainClient(node_url) as client:
        rows = client.query("/market/providers")
    lines = [f"{p['owner']}  {p['host_uri']}  {p['gpu_count']}x {p['gpu_model'] or '-'} ({p['vram_gb']} GB)  "
             f"{p['cpu_millis'] / 1000:g} CPU  {p['memory_mb']} MB  {p['region']}" for p in rows]
    emit(ctx, rows, "\n".join(lines) if lines else "No provider has registered yet.")


@market.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@node_option
@click.pass_context
def match(ctx: click.Context, file: Path, node_url: str | None) -> None:
    """Which registered providers can serve FILE, and for each one that cannot, why."""
    deployment = parse_deployment(file.read_text())
    with ChainClient(node_url) as client:
        matches = explain_match(client.query("/market/providers"), deployment)
    fitting = sum(m.fits for m in matches)
    lines = [f"{'can serve ' if m.fits else 'cannot    '} {m.provider}  {m.host_uri}"
             + ("" if m.fits else f"  ({m.reason})") for m in matches]
    lines.append(f"{fitting} of {len(matches)} providers can serve {file.name}.")
    emit(ctx, [{"provider": m.provider, "host_uri": m.host_uri, "fits": m.fits, "reason": m.reason} for m in matches],
         "\n".join(lines))
