"""``gridmint``: wallets, a devnode, and a look at the chain."""

from __future__ import annotations

from typing import Any

import click

from gridmint import __version__
from gridmint.chain.errors import ChainError
from gridmint.cli.chain import chain
from gridmint.cli.demo import demo
from gridmint.cli.deploy import deploy
from gridmint.cli.explorer import explorer
from gridmint.cli.gateway import credit, gateway
from gridmint.cli.genesis import genesis
from gridmint.cli.market import market
from gridmint.cli.miner import miner
from gridmint.cli.net import net
from gridmint.cli.node import node
from gridmint.cli.output import fail
from gridmint.cli.provider import provider
from gridmint.cli.reference import reference
from gridmint.cli.subnet import endpoint, stake, subnet, weights
from gridmint.cli.up import down, up
from gridmint.cli.validator import validator
from gridmint.cli.wallet import wallet


class GridMintGroup(click.Group):
    """Turns every ChainError (a user's mistake or a refusal) into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ChainError as error:
            fail(ctx, error)


@click.group(cls=GridMintGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gridmint")
@click.option("--json", "json_output", is_flag=True, help="Print JSON instead of sentences.")
def cli(json_output: bool) -> None:
    """GridMint: an open network for decentralized AI compute."""


for command in (wallet, node, genesis, chain, subnet, stake, weights, endpoint, miner, validator, market, provider,
                deploy, gateway, credit, net, reference, explorer, demo, up, down):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="gridmint")


if __name__ == "__main__":
    main()
