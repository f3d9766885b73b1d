"""DESIGN.md's import rules, checked on every module of src/gridmint: imports point one way — ``cli`` → ``gateway``,
``inference``, ``market``, ``web`` → ``client`` → ``chain``, and ``node`` → ``chain``; ``chain`` imports none of the
others; ``inference`` and ``market`` do not import each other; the gateway uses the inference protocol but the
miner and validator never import the gateway; clients talk to nodes over RPC and never import ``node``.
``ports`` and ``servers`` (one module each: free ports, serving an ASGI app) are tools any package but ``chain``
may use. The checker is tested on sources that break each rule, so it cannot pass vacuously."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.source import imported_modules

SRC = Path(__file__).resolve().parents[1] / "src" / "gridmint"
TOOLS = {"ports", "servers"}
# What each package may import of the others (its own modules aside).
ALLOWED: dict[str, set[str]] = {
    "chain": set(),
    "client": {"chain"},
    "node": {"chain"},
    "web": {"client", "chain"},
    "market": {"client", "chain"},
    "inference": {"client", "chain"},
    "gateway": {"inference", "client", "chain"},
    "cli": {"gateway", "inference", "market", "web", "client", "chain", "node"},
}


def package_of(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def layout_problems(package: str, source: str) -> list[str]:
    """What ``source``, a module of ``package``, imports against the rules."""
    problems = []
    for name in imported_modules(source):
        parts = name.split(".")
        if parts[0] != "gridmint" or len(parts) < 2 or parts[1] == package:
            continue
        target = parts[1]
        if target in TOOLS and package != "chain":
            continue
        if target not in ALLOWED.get(package, set()):
            problems.append(f"{package} imports {name}: {package} may import only "
                            f"{sorted(ALLOWED.get(package, set())) or 'nothing of the others'}")
    return problems


def test_every_module_follows_the_import_rules() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        package = package_of(path)
        if package == "__init__":
            continue
        assert package in ALLOWED or package in TOOLS, f"{path}: a package DESIGN.md's layout does not name"
        problems += [f"{path.relative_to(SRC)}: {p}" for p in layout_problems(package, path.read_text())]
    assert problems == []


@pytest.mark.parametrize(("package", "source"), [
    ("chain", "from gridmint.client.chain_client import ChainClient"),
    ("chain", "import gridmint.ports"),
    ("client", "from gridmint.node import rpc"),
    ("inference", "from gridmint.market.deployment import parse"),
    ("market", "from gridmint.inference.miner.app import MinerApp"),
    ("inference", "from gridmint.gateway.app import GatewayApp"),
    ("web", "from gridmint.cli.main import cli"),
    ("node", "from gridmint.client.wallet import open_wallet"),
])
def test_the_checker_finds_each_kind_of_breach(package: str, source: str) -> None:
    assert layout_problems(package, source)


def test_the_checker_lets_the_allowed_imports_pass() -> None:
    assert layout_problems("gateway", "from gridmint.inference import wire\nimport gridmint.ports") == []
    assert layout_problems("cli", "from gridmint.node.setup import init_data_dir") == []
