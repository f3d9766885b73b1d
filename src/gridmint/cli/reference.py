"""The chain's reference, written from the modules themselves: ``gridmint reference > docs/chain.md``.

For each module of the app: what it is and what state it keeps (its docstring), its messages with their fields,
its queries, the events it emits, its errors with their stable codes, its invariants and its parameters (default
and bounds, what genesis may set); then the fee schedule.
Generated, so it cannot drift from the code; a test regenerates it and compares it with the file in docs/.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from types import ModuleType

import click

from gridmint.chain import fees, records
from gridmint.chain import genesis as genesis_file
from gridmint.chain.app import MODULES
from gridmint.chain.errors import registered
from gridmint.chain.fields import describe
from gridmint.chain.module import EventData
from gridmint.chain.query_args import MAX_DATA_BYTES, MAX_PATH_BYTES

# Off-chain packages whose errors the reference lists too (importing them registers their codes).
OFF_CHAIN = ("gridmint.client.errors", "gridmint.client.signing", "gridmint.inference.wire",
             "gridmint.market.tenant", "gridmint.market.provider.api", "gridmint.gateway.app",
             "gridmint.gateway.routing", "gridmint.node.network")

def _module_of(name: str) -> ModuleType:
    return sys.modules[f"gridmint.chain.{name}"]


def _event_line(event: type[EventData]) -> str:
    """``- `type` (field: kind, ...): what it says``, from the module's declaration."""
    fields = ", ".join(f"{field.name}: {field.type}" for field in dataclasses.fields(event))  # type: ignore[arg-type]
    return f"- `{event.TYPE}` ({fields}): {inspect.cleandoc(event.__doc__ or '').strip()}"


def _params_table(module: ModuleType) -> list[str]:
    """A module's parameters (``<module>.params`` in genesis) with their defaults and bounds, if it has any."""
    params, bounds = getattr(module, "Params", None), getattr(module, "BOUNDS", {})
    if params is None:
        return []
    lines = ["### Parameters", "", "| name | default | bounds |", "|---|---|---|"]
    for field in dataclasses.fields(params):
        low, high = bounds[field.name]
        lines.append(f"| `{field.name}` | {field.default:,} | {low:,} to {high:,} |")
    return [*lines, ""]


def render() -> str:
    lines = ["# GridMint chain reference", "",
             "Generated from the modules by `gridmint reference` (a test keeps it current). Amounts "
             "are integers in grains (1 MINT = 10^9 grains). Queries are `abci_query` paths; answers are canonical "
             "MessagePack. Errors carry a stable `(codespace, code)`. Numbers in a query path are plain decimal "
             "(`7`, not `07` or `+7`): netuids and UIDs up to 65,535, ids up to 2^64 − 1; a path is at most "
             f"{MAX_PATH_BYTES} bytes and its data at most {MAX_DATA_BYTES}; anything else is `query/2 bad_request` (a "
             "malformed address: `tx/13 invalid_address`).",
             ""]
    for spec in MODULES:
        module = _module_of(spec.name)
        lines += [f"## {spec.name}", "", inspect.cleandoc(module.__doc__ or "").strip(), ""]
        if spec.handlers:
            lines += ["### Messages", "", "| type | fields |", "|---|---|"]
            for message in spec.handlers:
                fields = "; ".join(f"`{name}`: {describe(check)}" for name, check in message.FIELDS) or "(none)"
                lines.append(f"| `{message.TYPE}` | {fields} |")
            lines.append("")
        if spec.queries:
            lines += ["### Queries", ""]
            lines += [f"- `/{spec.name}/{path}`" + ("" if path != "*" else " (any path below the module)")
                      for path in spec.queries]
            lines.append("")
        if spec.events:
            lines += ["### Events", "", *[_event_line(event) for event in spec.events], ""]
        errors = [kind for kind in registered() if kind.module == spec.name]
        if errors:
            lines += ["### Errors", "", "| code | name |", "|---|---|"]
            lines += [f"| {kind.module}/{kind.code} | {kind.name} |" for kind in errors]
            lines.append("")
        if spec.invariants:
            lines += ["### Invariants", "", *[f"- `{name}`" for name in spec.invariants], ""]
        lines += _params_table(module)
    lines += ["## Fees", "", inspect.cleandoc(fees.__doc__ or "").strip(), "",
              "| message | work units (U: the subnet's max_uids) |", "|---|---|"]
    lines += [f"| `{message.TYPE}` | {rule.words} |" for message, rule in fees.SCHEDULE.items()]
    lines.append("")
    lines += ["## Genesis and export", "", inspect.cleandoc(genesis_file.__doc__ or "").strip(), "",
              inspect.cleandoc(records.__doc__ or "").strip(), ""]
    for name in OFF_CHAIN:
        importlib.import_module(name)
    shared = [kind for kind in registered() if kind.module not in {spec.name for spec in MODULES}]
    lines += ["## Other errors (transactions, queries, clients, miners, providers, gateways)", "",
              "| code | name |", "|---|---|"]
    lines += [f"| {kind.module}/{kind.code} | {kind.name} |" for kind in shared]
    return "\n".join(lines) + "\n"


@click.command(hidden=True)
def reference() -> None:
    """Print the chain reference (docs/chain.md) as Markdown."""
    sys.stdout.write(render())
