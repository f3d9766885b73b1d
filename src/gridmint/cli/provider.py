"""``gridmint provider run``: offer this machine's resources on the compute market."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import click

from gridmint.chain.crypto import format_address, parse_address
from gridmint.chain.errors import ChainError
from gridmint.cli.common import MINT_AMOUNT, coldkey, listen_options, node_option, password_option, wallet_dir_option
from gridmint.cli.output import log_level_option, start_logging
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.market.provider.daemon import Provider, ProviderConfig
from gridmint.market.provider.inventory import discover_capacity
from gridmint.market.provider.pricing import PerUnit, PriceRule, expression_rule, script_rule
from gridmint.market.provider.runner import run_provider
from gridmint.market.provider.runtimes import RUNTIMES, make_runtime
from gridmint.market.provider.runtimes.process import DEFAULT_DISK_MB, ProcessRuntime


def _addresses(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Each address checked and written as the chain writes it (lower case), so it compares equal to an order's."""
    try:
        return tuple(dict.fromkeys(format_address(parse_address(value)) for value in values))
    except ChainError as error:
        raise click.BadParameter(str(error)) from None


@click.group()
def provider() -> None:
    """Rent out GPUs and CPUs: bid on orders, run leased workloads, get paid per block."""


@provider.command()
@listen_options(8443)
@click.option("--runtime", type=click.Choice(RUNTIMES), default="process", show_default=True)
@click.option("--ray-address", default="http://127.0.0.1:8265", show_default=True,
              help="The Ray cluster's dashboard address (ray runtime).")
@click.option("--trusted-tenant", "trusted_tenants", multiple=True, callback=_addresses, metavar="ADDRESS",
              help="A tenant (gm1...) whose orders a single-tenant runtime (ray) takes; repeatable, required there.")
@click.option("--lease-disk", "lease_disk_mb", type=click.IntRange(16, 16_777_216), default=DEFAULT_DISK_MB,
              show_default=True, help="Disk quota of each lease's folder and /tmp in MB (process runtime).")
@click.option("--cpu", type=float, default=None, help="CPU cores offered (default: all of this machine's).")
@click.option("--memory", "memory_mb", type=int, default=None, help="Memory offered in MB (default: all).")
@click.option("--region", default="", help="Where the machine is, e.g. eu-west.")
@click.option("--tag", "tags", multiple=True, help="A free-form attribute tenants can read (repeatable).")
@click.option("--bond", type=MINT_AMOUNT, default="0", help="Bond to hold (default: the chain's minimum).")
@click.option("--price-per-cpu", type=MINT_AMOUNT, default="0.0001", show_default=True,
              help="MINT per CPU core per block.")
@click.option("--price-per-gb", type=MINT_AMOUNT, default="0.00005", show_default=True,
              help="MINT per GB of memory per block.")
@click.option("--price-per-gpu", type=MINT_AMOUNT, default="0.01", show_default=True,
              help="MINT per GPU per block.")
@click.option("--price-expr", default=None,
              help="A Python expression giving grains per block (names: cpu, memory_gb, gpus, max_price, order).")
@click.option("--price-script", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A Python file defining price(order) -> grains per block.")
@click.option("--withdraw-every", type=int, default=100, show_default=True,
              help="Withdraw earnings every N blocks (0: only when leases close).")
@click.option("--health-seconds", type=float, default=2.0, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("provider-data"),
              show_default=True, help="Where leases' working directories and logs go.")
@click.option("--wallet", "wallet_name", required=True, help="The wallet whose coldkey is the provider.")
@wallet_dir_option
@node_option
@password_option
@log_level_option
def run(host: str, port: int, external_url: str | None, runtime: str, ray_address: str,
        trusted_tenants: tuple[str, ...], lease_disk_mb: int, cpu: float | None,
        memory_mb: int | None, region: str, tags: tuple[str, ...], bond: int, price_per_cpu: int, price_per_gb: int,
        price_per_gpu: int, price_expr: str | None, price_script: Path | None, withdraw_every: int,
        health_seconds: float, data_dir: Path, wallet_name: str, wallet_dir: Path | None, node_url: str | None,
        password_file: str | None, log_level: str) -> None:
    """Register this machine's resources, bid on matching orders and run the leases won."""
    chosen = make_runtime(runtime, ray_address, lease_disk_mb)
    if isinstance(chosen, ProcessRuntime) and (problems := chosen.problems()):
        raise click.ClickException("the process runtime cannot sandbox leases on this host: " + "; ".join(problems))
    if chosen.single_tenant and not trusted_tenants:
        raise click.UsageError(f"the {runtime} runtime lets a lease's workload reach other leases (Ray has no "
                               "per-tenant access control), so it serves trusted tenants only: name them with "
                               "--trusted-tenant gm1... (repeatable), or use --runtime process or docker")
    start_logging(log_level)
    _, key = coldkey(wallet_name, wallet_dir, password_file)
    node = node_url or default_node_url()
    capacity = discover_capacity()
    if cpu is not None:
        capacity = replace(capacity, cpu_millis=round(cpu * 1000))
    if memory_mb is not None:
        capacity = replace(capacity, memory_mb=memory_mb)
    rule: PriceRule = (script_rule(price_script) if price_script else expression_rule(price_expr) if price_expr
                       else PerUnit(price_per_cpu, price_per_gb, price_per_gpu))
    config = ProviderConfig(external_url or f"http://{host}:{port}", region, tags, bond, withdraw_every,
                            trusted_tenants)
    with ChainClient(node) as client:
        daemon = Provider(key, client, capacity, rule, chosen, config, data_dir)
        daemon.register()
        asyncio.run(run_provider(daemon, host, port, node, health_seconds))
