"""Many streaming clients at once against the gateway, with echo miners behind it: errors, requests completed,
time to first token, and the gateway's peak memory.

``--clients`` streaming clients (1,000 by default), each on its own connection, send chat requests back to back
for ``--seconds``; every stream must end with ``data: [DONE]``. Everything runs on this machine (devnode, miners,
gateway and the load: bench/bench_network.py), so the time to first token includes queueing behind a 2-core CPU.
The baseline measured in the same run is one client alone (its time to first token, unloaded).

    .venv/bin/python bench/gateway_load.py [--clients 1000] [--seconds 30] [--miners 2]

The last line is JSON: {"errors", "completed", "p99_ttft_ms", "p50_ttft_ms", "gateway_peak_mb", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time

import orjson
import uvloop

from bench_network import peak_memory_mb, start_network
from gridmint.inference.http import HttpError, HttpPool

PAYLOAD = orjson.dumps({"model": "echo", "stream": True, "max_tokens": 8,
                        "messages": [{"role": "user", "content": "many clients, one gateway"}]})


async def client_loop(pool: HttpPool, url: str, headers: dict[str, str], deadline: float, ttft: list[float],
                      errors: list[str]) -> int:
    completed = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            async with pool.stream(url, PAYLOAD, headers, 120, 60) as answer:
                first = True
                tail = b""
                async for chunk in answer.chunks():
                    if first:
                        ttft.append(time.perf_counter() - started)
                        first = False
                    tail = (tail + chunk)[-64:]
                if answer.status != 200 or not tail.endswith(b"data: [DONE]\n\n"):
                    errors.append(f"status {answer.status}: {tail!r}")
                    continue
            completed += 1
        except HttpError as error:
            errors.append(str(error))
    return completed


async def run(url: str, api_key: str, clients: int, seconds: float) -> dict[str, float]:
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    endpoint = url + "/v1/chat/completions"
    alone: list[float] = []
    errors: list[str] = []
    single = HttpPool(max_per_host=1)
    await client_loop(single, endpoint, headers, time.perf_counter() + 2, alone, errors)
    single.close()
    pool = HttpPool(max_per_host=clients)
    ttft: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    counts = await asyncio.gather(*(client_loop(pool, endpoint, headers, deadline, ttft, errors)
                                    for _ in range(clients)))
    elapsed = time.perf_counter() - started
    pool.close()
    ordered = sorted(ttft)
    return {"errors": len(errors), "completed": sum(counts), "streams_per_s": sum(counts) / elapsed,
            "p50_ttft_ms": statistics.median(ordered) * 1000, "p99_ttft_ms": ordered[int(len(ordered) * 0.99)] * 1000,
            "alone_p50_ttft_ms": statistics.median(alone) * 1000, "first_error": errors[0] if errors else ""}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--miners", type=int, default=2)
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    net = start_network(miners=args.miners)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run(net.gateway_url, net.api_key, args.clients, args.seconds))
        results["gateway_peak_mb"] = peak_memory_mb(net.gateway_pid)
    finally:
        net.stop()
    print(f"{args.clients} streaming clients for {args.seconds:g} s through the gateway to {args.miners} echo miners:")
    print(f"  completed {results['completed']:.0f} streams ({results['streams_per_s']:.0f}/s), errors "
          f"{results['errors']:.0f}")
    print(f"  time to first token: p50 {results['p50_ttft_ms']:.1f} ms, p99 {results['p99_ttft_ms']:.1f} ms "
          f"(one client alone: p50 {results['alone_p50_ttft_ms']:.2f} ms)")
    print(f"  gateway peak memory: {results['gateway_peak_mb']:.0f} MB")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
