"""How commands speak: a human sentence or, with ``--json``, one JSON document; errors without tracebacks."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import click

from gridmint.chain.errors import ChainError


def emit(ctx: click.Context, data: Any, human: str) -> None:
    if ctx.find_root().params.get("json_output"):
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(human)


log_level_option = click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]),
                                show_default=True)


def start_logging(level: str) -> None:
    """A long-running command's log lines (a node, a miner, a validator, a gateway, a provider, the explorer) on
    stderr at ``level``; httpx's line per request only when it is a warning, since one line per chain call would
    drown the sentences."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def fail(ctx: click.Context | None, error: ChainError) -> None:
    as_json = bool(ctx and ctx.find_root().params.get("json_output"))
    if as_json:
        click.echo(json.dumps({"error": {"module": error.module, "code": error.code, "name": error.kind.name,
                                         "message": error.message}}), err=True)
    else:
        click.echo(f"error: {error.message} [{error.module}/{error.code} {error.kind.name}]", err=True)
    sys.exit(1)


def read_password(password_file: str | None, confirm: bool = False, what: str = "coldkey") -> str:
    """From ``--password-file``, else ``$GRIDMINT_PASSWORD``, else a hidden prompt."""
    if password_file:
        with open(password_file) as handle:
            return handle.read().rstrip("\n")
    if "GRIDMINT_PASSWORD" in os.environ:
        return os.environ["GRIDMINT_PASSWORD"]
    return str(click.prompt(f"Password for the {what}", hide_input=True, confirmation_prompt=confirm))
