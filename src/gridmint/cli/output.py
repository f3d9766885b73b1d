"""How commands speak: a human sentence or, with ``--json``, one JSON document; errors without tracebacks."""

from __future__ import annotations

import json
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
