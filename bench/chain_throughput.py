"""Signed transfers committed per second on a devnode, through its JSON-RPC.

Clients sign every transfer ahead of time (many senders, sequential nonces), then submit them as JSON-RPC batches
of ``broadcast_tx_sync`` from two client threads, and the clock runs from the first submission until the block
holding the last successful transfer is seen committed. Only transfers whose result is success count. Beside
it, the same run measures the single-core ed25519 verification rate on the same transactions (the baseline:
every transfer costs at least one verification), and the ratio.

    .venv/bin/python bench/chain_throughput.py [--txs 30000] [--senders 300] [--block-time 0.5]

The last line is JSON: {"transfers_per_s", "verify_per_s", "ratio", ...}.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from gridmint.chain import bank, codec, fees
from gridmint.chain.crypto import PrivateKey, format_address, verify
from gridmint.chain.genesis import make_genesis_document, write_genesis
from gridmint.chain.tx import TxBody, sign_tx
from gridmint.node.devnode import write_node_key
from gridmint.ports import free_port

CHAIN_ID = "gridmint-bench"
BATCH = 500


def rpc(client: httpx.Client, method: str, **params: object) -> dict:  # type: ignore[type-arg]
    answer = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
    return answer["result"]  # type: ignore[no-any-return]


def transfer_fee(message: bank.MsgSend) -> int:
    """What the chain requires for a transfer under the genesis below (default fee parameters): chain/fees.py."""
    return fees.compute_required_fee(bank.Params(), [message], "", lambda netuid: None, dict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--txs", type=int, default=30_000)
    parser.add_argument("--senders", type=int, default=300)
    parser.add_argument("--block-time", type=float, default=0.5)
    args = parser.parse_args()

    senders = [PrivateKey(i.to_bytes(32, "big")) for i in range(1, args.senders + 1)]
    recipient = PrivateKey(b"\xff" * 32).address
    workdir = Path(tempfile.mkdtemp(prefix="gridmint-bench-"))
    authority = write_node_key(workdir)
    write_genesis(workdir / "genesis.json", make_genesis_document(
        CHAIN_ID, "2026-01-01T00:00:00Z", [("bench", authority.public_key)],
        [(format_address(k.address), 10**18) for k in senders]))

    print(f"signing {args.txs} transfers from {args.senders} senders ...", file=sys.stderr)
    txs: list[bytes] = []
    bodies: list[tuple[bytes, bytes, bytes]] = []
    for i in range(args.txs):
        sender = senders[i % args.senders]
        message = bank.MsgSend(recipient, 1_000 + i)
        body = TxBody(CHAIN_ID, sender.public_key, i // args.senders + 1, transfer_fee(message), (message,))
        raw = sign_tx(body, sender)
        txs.append(raw)
        if len(bodies) < 5_000:
            body_bytes, signature = codec.decode(raw)
            bodies.append((sender.public_key, body_bytes, signature))

    # Baseline, measured in this run: ed25519 verifications per second on one core.
    started = time.perf_counter()
    verified = 0
    while time.perf_counter() - started < 1.0:
        for public_key, body_bytes, signature in bodies:
            verify(public_key, body_bytes, signature)
        verified += len(bodies)
    verify_per_s = verified / (time.perf_counter() - started)

    port = free_port()
    log = (workdir / "devnode.log").open("w")
    node = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir", str(workdir),
                             "--block-time", str(args.block_time), "--rpc-laddr", f"127.0.0.1:{port}",
                             "--log-level", "warning", "--rpc-limit", f"max_request_batch_size={BATCH}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(200):
                try:
                    if int(rpc(client, "status")["sync_info"]["latest_block_height"]) >= 1:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            start_height = int(rpc(client, "status")["sync_info"]["latest_block_height"])
            refused: list[str] = []

            def submit(part: list[bytes]) -> None:
                with httpx.Client(base_url=url, timeout=120) as own:
                    for offset in range(0, len(part), BATCH):
                        batch = [{"jsonrpc": "2.0", "id": j, "method": "broadcast_tx_sync",
                                  "params": {"tx": base64.b64encode(raw).decode()}}
                                 for j, raw in enumerate(part[offset:offset + BATCH])]
                        for answer in own.post("/", content=json.dumps(batch)).json():
                            result = answer.get("result") or {}
                            if result.get("code", 1) != 0:
                                refused.append(result.get("log") or str(answer.get("error")))

            # The clock stops when the status first shows the block holding the last successful transfer committed
            # (not at that block's header time, which the devnode stamps before it executes and commits the block).
            # A watcher polls the status every 50 ms from the first submission, so the moment a block is seen does
            # not wait for the submissions or for reading earlier blocks' results.
            first_seen_ns: dict[int, int] = {}
            watching = threading.Event()

            def watch() -> None:
                with httpx.Client(base_url=url, timeout=60) as own:
                    while not watching.is_set():
                        latest = int(rpc(own, "status")["sync_info"]["latest_block_height"])
                        seen_ns = time.time_ns()
                        for seen in range(start_height + 1, latest + 1):
                            first_seen_ns.setdefault(seen, seen_ns)
                        watching.wait(0.05)

            print(f"submitting through {url} ...", file=sys.stderr)
            started_ns = time.time_ns()
            watcher = threading.Thread(target=watch)
            watcher.start()
            # Each thread takes whole senders, so every sender's nonces arrive in order.
            halves = [[raw for i, raw in enumerate(txs) if (i % args.senders) % 2 == k] for k in (0, 1)]
            threads = [threading.Thread(target=submit, args=(half,)) for half in halves]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            submitted_s = (time.time_ns() - started_ns) / 1e9
            # Counted: transactions whose result in a committed block is success (code 0).
            committed, failed, last_time_ns, height = 0, 0, started_ns, start_height
            deadline = time.monotonic() + 120
            try:
                while committed + failed + len(refused) < args.txs and time.monotonic() < deadline:
                    while height + 1 in first_seen_ns:
                        height += 1
                        results = rpc(client, "block_results", height=str(height)).get("txs_results") or []
                        succeeded = sum(1 for result in results if int(result.get("code", 0)) == 0)
                        committed, failed = committed + succeeded, failed + len(results) - succeeded
                        if succeeded:
                            last_time_ns = first_seen_ns[height]
                    time.sleep(0.05)
            finally:
                watching.set()
                watcher.join()
            final_app_hash = rpc(client, "status")["sync_info"]["latest_app_hash"]
    finally:
        node.terminate()
        node.wait(timeout=20)
        log.close()

    elapsed_s = (last_time_ns - started_ns) / 1e9
    transfers_per_s = committed / elapsed_s if elapsed_s > 0 else 0.0
    print(f"committed {committed} of {args.txs} transfers in {elapsed_s:.2f} s "
          f"(submission took {submitted_s:.2f} s; {len(refused)} refused at check_tx, {failed} failed in blocks; "
          f"blocks {start_height + 1}..{height})")
    if refused:
        print(f"first refusal: {refused[0]}")
    print(f"devnode throughput : {transfers_per_s:10.0f} transfers/s")
    print(f"ed25519 verify rate: {verify_per_s:10.0f} verifications/s (one core, baseline)")
    print(f"ratio              : {transfers_per_s / verify_per_s:10.3f}")
    print(json.dumps({"transfers_per_s": round(transfers_per_s, 1), "verify_per_s": round(verify_per_s, 1),
                      "ratio": round(transfers_per_s / verify_per_s, 4), "committed": committed,
                      "refused": len(refused), "failed": failed, "txs": args.txs, "blocks": height - start_height,
                      "app_hash": final_app_hash}))



if __name__ == "__main__":
    main()
