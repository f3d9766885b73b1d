"""Signed request → signed answer round trips against a miner with the ``echo`` backend on loopback.

The miner runs in its own process (uvicorn + httptools); this process is the caller, with the same MinerClient
validators and gateways use: it signs every request and verifies every answer's signature. Both share this
machine's cores. Measured: requests/s and p50/p99 latency at concurrency 1 and 32, next to the cost of the
signatures alone (sign + verify on one core) as the baseline measured in the same run.

    .venv/bin/python bench/miner_rpc.py [--seconds 5] [--caller gateway]

``--caller gateway``: the miner takes the caller for a gateway, so every answer is also counted in its book (a
SQLite file in a temporary folder, written once per event-loop turn), as a gateway's traffic is.

The last line is JSON: {"rps_c32", "p50_ms_c1", "p99_ms_c1", "p50_ms_c32", "p99_ms_c32", "rps_c1", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import orjson
import uvloop

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.client.signing import NonceWindow, sign_answer, sign_request, verify_answer, verify_request
from gridmint.inference.client import MinerClient
from gridmint.ports import free_port
from latency import p50_p99_ms

MINER_SEED, CALLER_SEED = b"\x11" * 32, b"\x22" * 32
PAYLOAD = {"model": "echo", "messages": [{"role": "user", "content": "ping from the benchmark"}], "max_tokens": 8}

MINER_MAIN = """
import logging, sys, tempfile
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.book import ReceiptBook, open_db
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import CallerPolicy
miner, caller = PrivateKey(bytes.fromhex(sys.argv[1])), format_address(PrivateKey(bytes.fromhex(sys.argv[2])).address)
if sys.argv[4] == "gateway":
    book = ReceiptBook(open_db(tempfile.mkdtemp() + "/book.db"), "bench", miner.address)
    app = MinerApp(miner, EchoBackend(), CallerPolicy(gateways={caller}), max_concurrency=256, book=book,
                   price_per_1k=1000)
else:
    app = MinerApp(miner, EchoBackend(), CallerPolicy(validators={caller}), max_concurrency=256)
serve_miner(app, "127.0.0.1", int(sys.argv[3]))
"""


async def run_load(client: MinerClient, url: str, miner: str, concurrency: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            answer = await client.call(url, "/v1/chat/completions", miner, PAYLOAD)
            if answer.status != 200 or not answer.signed:
                failures += 1
            latencies.append(answer.latency_s)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failures:
        raise SystemExit(f"{failures} requests failed or came back unsigned")
    return latencies


def signature_baseline(seconds: float = 1.0) -> float:
    """Round trips per second that the signatures alone allow on one core (sign + verify, both sides)."""
    caller, miner = PrivateKey(CALLER_SEED), PrivateKey(MINER_SEED)
    caller_address, miner_address = format_address(caller.address), format_address(miner.address)
    body = orjson.dumps(PAYLOAD)
    nonces = NonceWindow()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        # The real checks on real signatures, as the miner and the caller make them (a signature that fails
        # early, such as an all-zero one, would make this baseline look cheaper than it is).
        headers = sign_request(caller, miner_address, body)
        verify_request(headers, body, miner_address, nonces)
        answer = sign_answer(miner, int(headers["x-gm-nonce"]), caller_address, body)
        verify_answer(answer, body, miner_address, int(headers["x-gm-nonce"]), caller_address)
        count += 1
    return count / (time.perf_counter() - started)


async def main_async(seconds: float, caller: str) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    miner = format_address(PrivateKey(MINER_SEED).address)
    process = subprocess.Popen([sys.executable, "-c", MINER_MAIN, MINER_SEED.hex(), CALLER_SEED.hex(), str(port),
                                caller], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for _ in range(100):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        results: dict[str, float] = {}
        async with MinerClient(PrivateKey(CALLER_SEED), connections=64, allow=[f"127.0.0.1:{port}"]) as client:
            await run_load(client, url, miner, 8, 0.5)  # warm up connections and caches
            for concurrency in (1, 32):
                started = time.perf_counter()
                latencies = await run_load(client, url, miner, concurrency, seconds)
                elapsed = time.perf_counter() - started
                results[f"rps_c{concurrency}"] = len(latencies) / elapsed
                results[f"p50_ms_c{concurrency}"], results[f"p99_ms_c{concurrency}"] = p50_p99_ms(latencies)
                results[f"requests_c{concurrency}"] = len(latencies)
        return results
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--caller", choices=("validator", "gateway"), default="validator")
    args = parser.parse_args()
    baseline = signature_baseline()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as validators and gateways run
        results = runner.run(main_async(args.seconds, args.caller))
    for concurrency in (1, 32):
        print(f"concurrency {concurrency:>2}: {results[f'rps_c{concurrency}']:8.0f} req/s, "
              f"p50 {results[f'p50_ms_c{concurrency}']:.2f} ms, p99 {results[f'p99_ms_c{concurrency}']:.2f} ms")
    print(f"signatures alone (2 signs + 2 verifies per round trip, one core): {baseline:8.0f} round trips/s")
    print(f"ratio c32 / signatures alone: {results['rps_c32'] / baseline:.2f}")
    print(json.dumps({**{k: round(v, 3) for k, v in results.items()}, "signature_only_rps": round(baseline, 1),
                      "ratio_c32": round(results["rps_c32"] / baseline, 3)}))


if __name__ == "__main__":
    main()
