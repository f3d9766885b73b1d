"""Many streaming clients at once against the gateway, with echo miners behind it: errors, requests completed,
time to first token, and the gateway's peak memory.

``--clients`` streaming clients (1,000 by default), each on its own connection, send chat requests back to back
for ``--seconds``. They are spread over ``--accounts`` consumer accounts (100), each with its own credit line and
API key, and the gateway limits each account as ``gridmint gateway run`` does by default (``--rate`` 100 requests
per second, ``--burst`` 200). A stream counts as completed only if it is a 200 that ends with ``data: [DONE]`` and
carries no error event (a stream a miner broke mid-way also ends with ``[DONE]``, after
``data: {"error": ...}``); everything else is an error, counted by kind. Everything runs on this machine (devnode,
miners, gateway and the load: bench/bench_network.py), so the time to first token includes queueing behind a 2-core
CPU. The baseline measured in the same run is one client alone (its time to first token, unloaded).

    .venv/bin/python bench/gateway_load.py [--clients 1000] [--seconds 30] [--miners 2] [--accounts 100]
                                           [--rate 100] [--burst 200]

The last line is JSON: {"errors", "errors_by_kind", "completed", "p99_ttft_ms", "p50_ttft_ms", "gateway_peak_mb",
..., and the settings}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import statistics
import time

import orjson
import uvloop

from bench_network import peak_memory_mb, start_network
from gridmint.inference.http import HttpError, HttpPool
from latency import p50_p99_ms

PAYLOAD = orjson.dumps({"model": "echo", "stream": True, "max_tokens": 8,
                        "messages": [{"role": "user", "content": "many clients, one gateway"}]})


ERROR_EVENT = b'data: {"error"'


async def client_loop(pool: HttpPool, url: str, headers: dict[str, str], deadline: float, ttft: list[float],
                      errors: list[tuple[str, str]], interval_s: float = 0.0) -> int:
    """Streams back to back (at most one per ``interval_s``) until ``deadline``; returns how many completed.
    ``errors`` gets (kind, detail)."""
    completed = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            async with pool.stream(url, PAYLOAD, headers, 120, 60) as answer:
                first = True
                tail = b""  # the stream's last bytes, long enough to hold an error event cut across two chunks
                broken = False
                async for chunk in answer.chunks():
                    if first:
                        ttft.append(time.perf_counter() - started)
                        first = False
                    tail = (tail + chunk)[-(len(ERROR_EVENT) + 64 + len(chunk)):]
                    broken = broken or ERROR_EVENT in tail
                    tail = tail[-(len(ERROR_EVENT) + 64):]
                if answer.status != 200:
                    errors.append((f"http_{answer.status}", tail.decode(errors="replace")))
                elif broken:
                    errors.append(("broken_mid_stream", tail.decode(errors="replace")))
                elif not tail.endswith(b"data: [DONE]\n\n"):
                    errors.append(("no_done", tail.decode(errors="replace")))
                else:
                    completed += 1
        except HttpError as error:
            errors.append(("transport", str(error)))
        await asyncio.sleep(max(0.0, interval_s - (time.perf_counter() - started)))
    return completed


def headers_for(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}", "content-type": "application/json"}


async def run(url: str, api_keys: list[str], clients: int, seconds: float, rate: float) -> dict[str, object]:
    endpoint = url + "/v1/chat/completions"
    alone: list[float] = []
    errors: list[tuple[str, str]] = []
    single = HttpPool(max_per_host=1)
    # Alone, below the account's rate limit (a lone client at full speed makes ~1,000 requests a second).
    await client_loop(single, endpoint, headers_for(api_keys[0]), time.perf_counter() + 2, alone, errors,
                      interval_s=2 / rate)
    single.close()
    if errors:
        raise SystemExit(f"one client alone failed: {errors[0]}")
    pool = HttpPool(max_per_host=clients)
    ttft: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    counts = await asyncio.gather(*(client_loop(pool, endpoint, headers_for(api_keys[i % len(api_keys)]), deadline,
                                                ttft, errors) for i in range(clients)))
    elapsed = time.perf_counter() - started
    pool.close()
    p50_ms, p99_ms = p50_p99_ms(ttft)
    kinds = collections.Counter(kind for kind, _ in errors)
    return {"errors": len(errors), "errors_by_kind": dict(sorted(kinds.items())), "completed": sum(counts),
            "streams_per_s": sum(counts) / elapsed, "p50_ttft_ms": p50_ms, "p99_ttft_ms": p99_ms,
            "alone_p50_ttft_ms": statistics.median(alone) * 1000, "first_error": " ".join(errors[0]) if errors else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--miners", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=100, help="consumer accounts (a line and a key each)")
    parser.add_argument("--rate", type=float, default=100.0, help="the gateway's requests per second per account")
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = {"clients": args.clients, "seconds": args.seconds, "miners": args.miners, "accounts": args.accounts,
                "rate_per_account": args.rate, "burst": args.burst}
    print(f"Starting a devnode, {args.miners} echo miners and a gateway (limit {args.rate:g} requests/s per account, "
          f"burst {args.burst}); opening {args.accounts} credit lines and keys ...", flush=True)
    net = start_network(miners=args.miners, consumers=args.accounts, rate=args.rate, burst=args.burst)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run(net.gateway_url, net.api_keys, args.clients, args.seconds, args.rate))
        results["gateway_peak_mb"] = peak_memory_mb(net.gateway_pid)
    finally:
        net.stop()
    print(f"{args.clients} streaming clients over {args.accounts} accounts for {args.seconds:g} s through the gateway "
          f"to {args.miners} echo miners (limit {args.rate:g}/s, burst {args.burst} per account):")
    print(f"  completed {results['completed']} streams ({results['streams_per_s']:.0f}/s), errors "
          f"{results['errors']} {results['errors_by_kind']}")
    print(f"  time to first token: p50 {results['p50_ttft_ms']:.1f} ms, p99 {results['p99_ttft_ms']:.1f} ms "
          f"(one client alone: p50 {results['alone_p50_ttft_ms']:.2f} ms)")
    print(f"  gateway peak memory: {results['gateway_peak_mb']:.0f} MB")
    print(json.dumps({**settings, **{k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}}))


if __name__ == "__main__":
    main()
