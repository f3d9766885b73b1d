"""A real devnode and real provider daemons (``gridmint provider run`` processes), driven through the tenant's CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gridmint.cli.main import cli
from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from gridmint.ports import free_port
from tests.support.nodes import CometNetwork, DevnodeProcess, funded_devnode
from tests.support.processes import LoggedProcess, start_server

# A small HTTP service: answers GET with its greeting and logs each request, listening where the provider says.
SERVICE = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ["GREETING"] + " from " + self.path).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        print("served", self.path, flush=True)
print("listening on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def deployment_yaml(max_price: str = "0.001", deposit: str = "5", greeting: str = "hello", cpu: float = 0.5,
                    memory: int = 256) -> str:
    return json.dumps({  # JSON is YAML
        "version": 1,
        "services": {"web": {"command": ["python3", "-c", SERVICE], "env": {"GREETING": greeting}, "ports": [8080]}},
        "resources": {"cpu": cpu, "memory": memory},
        "price": {"max_per_block": max_price},
        "deposit": deposit,
    }, indent=2)


@dataclass
class ProviderProcess(LoggedProcess):
    """A `gridmint provider run` process and the provider's address on chain."""

    address: str


@dataclass
class LiveMarket:
    node: DevnodeProcess | CometNetwork
    wallets: Path
    tmp: Path
    runner: CliRunner = field(default_factory=CliRunner)
    providers: dict[str, ProviderProcess] = field(default_factory=dict)

    def run(self, *args: str) -> Any:
        result = self.runner.invoke(cli, ["--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def deploy(self, file: Path, *options: str) -> Any:
        """`gridmint deploy create FILE` by the tenant, taking the cheapest bid."""
        return self.run("deploy", "create", str(file), "--wallet", "tenant", "--auto-accept", "cheapest",
                        "--bid-wait", "30", *options)

    def run_fails(self, *args: str) -> dict[str, Any]:
        result = self.runner.invoke(cli, ["--json", *args])
        assert result.exit_code == 1, result.output
        return dict(json.loads(result.stderr)["error"])

    def client(self) -> ChainClient:
        return ChainClient(self.node.url)

    def address(self, wallet: str) -> str:
        return open_wallet(wallet, self.wallets).address

    def start_provider(self, wallet: str, *options: str) -> ProviderProcess:
        port = free_port()
        started = start_server(
            f"provider-{wallet}", ["provider", "run", "--wallet", wallet, "--node", self.node.url, "--port", str(port),
                                   "--data-dir", str(self.tmp / f"provider-{wallet}"), "--health-seconds", "0.5",
                                   *options],
            self.tmp, port, env={"GRIDMINT_PASSWORD": "pw", "GRIDMINT_WALLET_DIR": str(self.wallets)}, timeout_s=60)
        provider = ProviderProcess(wallet, started.url, started.process, started.log_path, self.address(wallet))
        self.providers[wallet] = provider
        return provider

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path


@contextmanager
def live_market(tmp_path: Path, monkeypatch: Any, names: tuple[str, ...] = ("tenant", "alpha", "beta"),
                block_time: float = 0.1, kind: str = "devnode") -> Iterator[LiveMarket]:
    node, wallets = funded_devnode(tmp_path, names, block_time=block_time, kind=kind)
    monkeypatch.setenv("GRIDMINT_WALLET_DIR", str(wallets))
    monkeypatch.setenv("GRIDMINT_NODE", node.url)
    monkeypatch.setenv("GRIDMINT_PASSWORD", "pw")
    market = LiveMarket(node, wallets, tmp_path)
    try:
        yield market
    finally:
        for provider in market.providers.values():
            provider.stop()
        node.stop()
