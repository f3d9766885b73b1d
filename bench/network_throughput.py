"""Signed transfers committed per second on a 4-authority CometBFT network and on a devnode, in the same run.

The same pre-signed transfers (``--txs`` from ``--senders`` accounts) go to each chain through JSON-RPC batches of
``broadcast_tx_async``, as load generators for CometBFT send them; on the network, each sender's transactions go to
one node (so its nonces arrive in order) and the senders are spread over the four nodes. The load holds back while
more than ``BACKLOG`` transactions wait for a block. Only transactions whose result in ``block_results`` is
success count; the rate is those divided by the time from the first submission until a follower polling the
first node saw the last one's result. Everything shares this machine: four CometBFT processes and four app
processes on 2 cores for the network, one process for the devnode.

    .venv/bin/python bench/network_throughput.py [--txs 20000] [--senders 200]

The last line is JSON: {"network_transfers_per_s", "devnode_transfers_per_s", ...}.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gridmint.chain import bank, fees
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.tx import TxBody, sign_tx
from gridmint.client.chain_client import ChainClient
from gridmint.node.network import init_network, set_config_value, start_network, stop_network
from gridmint.node.setup import init_data_dir
from gridmint.ports import free_port

BATCH = 250
FEE = fees.compute_required_fee(bank.Params(), [bank.MsgSend(bytes(20), 1)], "", lambda netuid: None, dict)
TIMEOUT_COMMIT = "1s"
# Transactions sent but not yet in a block before the load holds back: a node's mempool rechecks what it still
# holds after each block, so an unbounded flood costs every node work in proportion to its backlog.
BACKLOG = 3_000


def sign_all(chain_id: str, senders: list[PrivateKey], count: int) -> list[list[bytes]]:
    """Per sender, its transfers in nonce order."""
    recipient = PrivateKey(b"\xee" * 32).address
    per_sender: list[list[bytes]] = [[] for _ in senders]
    for i in range(count):
        index = i % len(senders)
        body = TxBody(chain_id, senders[index].public_key, len(per_sender[index]) + 1, FEE,
                      (bank.MsgSend(recipient, 1_000 + i),))
        per_sender[index].append(sign_tx(body, senders[index]))
    return per_sender


@dataclass
class Progress:
    """What the load has sent and what executed blocks hold so far, shared by the submitting threads and the
    follower; the senders hold back while more than ``backlog`` of their transactions wait for a block."""
    backlog: int
    sent: int = 0
    committed: int = 0
    last_seen_ns: int = 0
    succeeded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    over: threading.Event = field(default_factory=threading.Event)  # the follower stopped: senders stop too


def submit(url: str, txs: list[bytes], progress: Progress, refused: list[str]) -> None:
    """Send ``txs`` in JSON-RPC batches of ``broadcast_tx_async`` (CometBFT checks them in a pipeline instead of
    one round trip each), holding back while the chain has not caught up with the load."""
    with httpx.Client(timeout=120) as client:
        for offset in range(0, len(txs), BATCH):
            while progress.sent - progress.committed > progress.backlog:
                if progress.over.is_set():
                    return
                time.sleep(0.01)
            chunk = txs[offset:offset + BATCH]
            with progress.lock:
                progress.sent += len(chunk)
            batch = [{"jsonrpc": "2.0", "id": j, "method": "broadcast_tx_async",
                      "params": {"tx": base64.b64encode(raw).decode()}} for j, raw in enumerate(chunk)]
            for answer in client.post(url, content=json.dumps(batch)).json():
                if "error" in answer:
                    refused.append(str(answer["error"]))
                    with progress.lock:
                        progress.sent -= 1


def follow(url: str, start_height: int, total: int, progress: Progress, refused: list[str]) -> None:
    """Count the transactions of each block once its results are stored (CometBFT stores a block before it
    executes it, and the load should follow execution) until all ``total`` are in or five minutes pass, noting
    when the last one was seen (polls every 50 ms)."""
    height = start_height
    deadline = time.monotonic() + 300
    try:
        with ChainClient(url, timeout=60) as chain:
            while progress.committed + len(refused) < total and time.monotonic() < deadline:
                try:
                    found = chain.call("block_results", height=str(height + 1))
                except ChainError:  # not executed yet
                    time.sleep(0.05)
                    continue
                height += 1
                results = found["txs_results"] or []
                with progress.lock:
                    progress.committed += len(results)
                    progress.succeeded += sum(1 for result in results if int(result.get("code") or 0) == 0)
                    if results:
                        progress.last_seen_ns = time.time_ns()
    finally:
        progress.over.set()


def measure(urls: list[str], per_sender: list[list[bytes]], total: int, backlog: int) -> tuple[float, int, int]:
    """(successful transfers/s, succeeded, failed or refused) after sending each sender's transactions to one of
    ``urls``; the rate runs from the first submission until the results of the last one were seen."""
    with ChainClient(urls[0]) as chain:
        start_height = chain.height()
    progress, refused = Progress(backlog), list[str]()
    groups: list[list[bytes]] = [[] for _ in urls]
    for index, txs in enumerate(per_sender):
        groups[index % len(urls)].extend(txs)
    started_ns = time.time_ns()
    # Daemon threads, and all of them stop once the follower does: an interrupted or failed run must reach the
    # caller's `finally` (which stops the network) instead of waiting on a load that can no longer drain.
    follower = threading.Thread(target=follow, args=(urls[0], start_height, total, progress, refused), daemon=True)
    threads = [threading.Thread(target=submit, args=(url, group, progress, refused), daemon=True)
               for url, group in zip(urls, groups, strict=True)]
    try:
        follower.start()
        for thread in threads:
            thread.start()
        for thread in [*threads, follower]:
            thread.join()
    finally:
        progress.over.set()
    succeeded, failed = progress.succeeded, progress.committed - progress.succeeded
    if refused or failed:
        print(f"  {len(refused)} refused, {failed} failed in a block; {refused[:1]}", file=sys.stderr)
    elapsed = (progress.last_seen_ns - started_ns) / 1e9
    rate = succeeded / elapsed if elapsed > 0 else 0.0
    return rate, succeeded, len(refused) + failed


def wait_for_height(url: str, height: int, failure: str) -> None:
    """Wait up to a minute for the node at ``url`` to answer with a block at ``height`` or above."""
    deadline = time.monotonic() + 60
    with ChainClient(url) as chain:
        while True:
            with contextlib.suppress(ChainError):
                if chain.height() >= height:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(failure)
            time.sleep(0.1)


def run_network(workdir: Path, senders: list[PrivateKey], count: int) -> tuple[float, int, int]:
    nodes = init_network(workdir / "net", 4, "bench-net", [(format_address(k.address), 10**15) for k in senders],
                         free_port() // 100 * 100 % 50_000 + 10_000, TIMEOUT_COMMIT)
    for node in nodes:  # room in the mempool for the whole load, and JSON-RPC batches as large as ours
        config_path = Path(node.home) / "config" / "config.toml"
        config = set_config_value(config_path.read_text(), "mempool", "size", str(count * 2))
        config = set_config_value(config, "mempool", "cache_size", str(count * 4))
        config_path.write_text(set_config_value(config, "rpc", "max_request_batch_size", str(BATCH)))
    try:  # an interrupted start stops what it started
        start_network(workdir / "net")
        urls = [f"http://127.0.0.1:{n.rpc_port}" for n in nodes]
        wait_for_height(urls[0], 2, "the network made no blocks")
        return measure(urls, sign_all("bench-net", senders, count), count, BACKLOG)
    finally:
        stop_network(workdir / "net")


def run_devnode(workdir: Path, senders: list[PrivateKey], count: int) -> tuple[float, int, int]:
    data_dir = workdir / "devnode"
    init_data_dir(data_dir, "bench-dev", [(format_address(k.address), 10**15) for k in senders])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (workdir / "devnode.log").open("w") as log:
        node = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir",
                                 str(data_dir), "--block-time", "0.5", "--rpc-laddr", f"127.0.0.1:{port}",
                                 "--log-level", "warning", "--rpc-limit", f"max_request_batch_size={BATCH}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_height(url, 1, "the devnode did not start")
        return measure([url], sign_all("bench-dev", senders, count), count, BACKLOG)
    finally:
        node.terminate()
        node.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--senders", type=int, default=200)
    args = parser.parse_args()
    # The network's processes are detached (they outlive their starter by design): a SIGTERM (from `timeout`, say)
    # must unwind through the `finally` that stops them rather than end the process on the spot.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    senders = [PrivateKey((i + 1).to_bytes(32, "big")) for i in range(args.senders)]
    workdir = Path(tempfile.mkdtemp(prefix="gridmint-net-bench-"))
    network, network_committed, network_refused = run_network(workdir, senders, args.txs)
    devnode, devnode_committed, devnode_refused = run_devnode(workdir, senders, args.txs)
    print(f"4-authority CometBFT network: {network:8.0f} transfers/s ({network_committed} committed, "
          f"{network_refused} refused)")
    print(f"devnode (same machine)      : {devnode:8.0f} transfers/s ({devnode_committed} committed, "
          f"{devnode_refused} refused)")
    print(f"ratio network / devnode     : {network / devnode:8.2f}")
    print(json.dumps({"network_transfers_per_s": round(network, 1), "devnode_transfers_per_s": round(devnode, 1),
                      "ratio": round(network / devnode, 3), "txs": args.txs, "network_committed": network_committed,
                      "devnode_committed": devnode_committed}))


if __name__ == "__main__":
    main()
