"""A small real network for the gateway benchmarks: a devnode, echo miners and a gateway, each its own process.

Keys are derived from fixed seeds (no wallets), the chain is set up with signed transactions: a subnet, the miners
registered with their endpoints and price, the gateway registered, each consumer's credit line open and its API key
issued through the gateway's challenge. The gateway's rate limit per account is the bench's to choose (off unless
asked); issuing keys is never throttled here (``/v1/auth/*`` allows one per second per client address, and every
key of a bench comes from one address), which changes nothing on the measured path. Import it from the benchmarks
in this folder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gridmint.chain.credit import MsgOpenCredit
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.subnets import MsgAnnounceEndpoint, MsgCreateSubnet, MsgRegister
from gridmint.client.chain_client import ChainClient, raise_for_code
from gridmint.gateway.keys import request_api_key
from gridmint.gateway.server import register_gateway
from gridmint.node.setup import init_data_dir
from gridmint.ports import free_port

OWNER, GATEWAY, CONSUMER, DIRECT = (PrivateKey(bytes([n]) * 32) for n in (0x41, 0x42, 0x43, 0x44))
PRICE_PER_1K = 1_000  # grains: every answer costs a grain or two, so metering and the ledger do their work

MINER_MAIN = """
import resource, sys
from gridmint.chain.crypto import PrivateKey
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import CallerPolicy
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
app = MinerApp(PrivateKey(bytes.fromhex(sys.argv[1])), EchoBackend(), CallerPolicy(gateways=set(sys.argv[3:])),
               max_concurrency=4096)
serve_miner(app, "127.0.0.1", int(sys.argv[2]))
"""

GATEWAY_MAIN = """
import logging, resource, sys
from pathlib import Path
from gridmint.chain.crypto import PrivateKey
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.server import build_gateway, serve_gateway
logging.basicConfig(level=logging.WARNING)
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
from gridmint.gateway.app import RateLimiter
app = build_gateway(PrivateKey(bytes.fromhex(sys.argv[1])), ChainClient(sys.argv[2]), Path(sys.argv[3]), 100,
                    rate=float(sys.argv[6]), burst=int(sys.argv[7]), settle_s=5.0, sync_s=5.0,
                    allow=sys.argv[5].split(","))
app.auth_limiter = RateLimiter(1e9, 10**9)  # the setup's keys; see the module's docstring
serve_gateway(app, "127.0.0.1", int(sys.argv[4]))
"""


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@dataclass
class BenchNetwork:
    workdir: Path
    node_url: str = ""
    gateway_url: str = ""
    api_key: str = ""  # the first consumer's
    api_keys: list[str] = field(default_factory=list)  # one per consumer account
    miners: list[tuple[str, str]] = field(default_factory=list)  # (url, hotkey address)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    gateway_pid: int = 0
    miner_pids: list[int] = field(default_factory=list)
    relay_url: str = ""  # the first miner behind a transparent TCP relay (tcp_relay.py), when asked for
    relay_pid: int = 0

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def consumer_keys(count: int) -> list[PrivateKey]:
    return [CONSUMER, *(PrivateKey(hashlib.sha256(b"bench consumer %d" % i).digest()) for i in range(1, count))]


def start_network(miners: int = 1, relay: bool = False, consumers: int = 1, rate: float = 1e9,
                  burst: int = 10**9) -> BenchNetwork:
    """Everything started, or (on any failure) everything stopped again. With ``relay``, the first miner is also
    reachable through a transparent TCP relay at ``relay_url``. ``consumers`` accounts each get a credit line and
    an API key; ``rate`` and ``burst`` are the gateway's limit per account (off by default)."""
    net = BenchNetwork(Path(tempfile.mkdtemp(prefix="gridmint-gateway-bench-")))
    try:
        _start(net, miners, consumer_keys(consumers), rate, burst)
        if relay:
            _start_relay(net)
    except BaseException:
        net.stop()
        raise
    return net


def _start(net: BenchNetwork, miners: int, consumers: list[PrivateKey], rate: float, burst: int) -> None:
    hotkeys = [PrivateKey(bytes([0x50 + i]) * 32) for i in range(miners)]
    funded = [OWNER, GATEWAY, *consumers, *hotkeys]
    init_data_dir(net.workdir / "node", "bench", [(format_address(k.address), 10**15) for k in funded])
    port = free_port()
    net.node_url = f"http://127.0.0.1:{port}"
    node = net._spawn(["-m", "gridmint.cli.main", "node", "start", "--data-dir", str(net.workdir / "node"),
                       "--block-time", "0.1", "--rpc-laddr", f"127.0.0.1:{port}", "--log-level", "warning"], "node")
    wait_http(net.node_url + "/status", node)
    gateway_address = format_address(GATEWAY.address)
    with ChainClient(net.node_url) as chain:
        while chain.height() < 1:  # queries answer from the first committed block on
            time.sleep(0.05)
        def send(key: PrivateKey, message: object) -> None:
            outcome = chain.send(key, [message])  # type: ignore[list-item]
            raise_for_code(outcome.code, outcome.codespace, outcome.log)

        send(OWNER, MsgCreateSubnet("text-generation", "bench"))
        for hotkey in hotkeys:
            miner_port = free_port()
            url = f"http://127.0.0.1:{miner_port}"
            send(hotkey, MsgRegister(1, hotkey.address, 0))  # the hotkey is its own coldkey here
            send(hotkey, MsgAnnounceEndpoint(1, url, ["echo"], PRICE_PER_1K, 1))
            process = net._spawn(["-c", MINER_MAIN, hotkey.seed.hex(), str(miner_port), gateway_address,
                                  format_address(DIRECT.address)], f"miner-{miner_port}")
            wait_http(url + "/health", process)
            net.miners.append((url, format_address(hotkey.address)))
            net.miner_pids.append(process.pid)
        gateway_port = free_port()
        net.gateway_url = f"http://127.0.0.1:{gateway_port}"
        register_gateway(chain, GATEWAY, net.gateway_url, 100, 0)
        for consumer in consumers:
            send(consumer, MsgOpenCredit(GATEWAY.address, 10**14 // len(consumers), 1_000_000, 10**12, 100, 0, 0))
    gateway = net._spawn(["-c", GATEWAY_MAIN, GATEWAY.seed.hex(), net.node_url, str(net.workdir / "gateway"),
                          str(gateway_port), ",".join(url.removeprefix("http://") for url, _ in net.miners),
                          repr(rate), str(burst)], "gateway")  # the gateway reaches exactly these loopback miners
    wait_http(net.gateway_url + "/health", gateway)
    net.gateway_pid = gateway.pid
    net.api_keys = [request_api_key(net.gateway_url, consumer, gateway_address) for consumer in consumers]
    net.api_key = net.api_keys[0]


def _start_relay(net: BenchNetwork) -> None:
    port = free_port()
    target = net.miners[0][0].removeprefix("http://")
    host, _, target_port = target.partition(":")
    process = net._spawn([str(Path(__file__).with_name("tcp_relay.py")), str(port), host, target_port], "relay")
    net.relay_url = f"http://127.0.0.1:{port}"
    wait_http(net.relay_url + "/health", process)
    net.relay_pid = process.pid


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
