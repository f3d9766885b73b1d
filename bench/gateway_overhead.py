"""What the gateway adds: the same chat requests to an echo miner directly, through a transparent TCP relay and
through the gateway, interleaved in the same run, at concurrency 1 and 32, non-streaming and streaming.

Direct calls are what a validator does (MinerClient: sign the request, verify the signed answer); calls through the
gateway are what an OpenAI client does (a bearer key, no signatures: the gateway signs, verifies, routes, meters
and writes the ledger). Both clients use the same lean HTTP client; the devnode, miner and gateway are processes
on this machine (bench/bench_network.py), sharing its cores with the load. The relay path is the direct call sent
through ``tcp_relay.py``, which forwards bytes and does nothing else: the cost of an extra hop by itself, so a run
tells the hop from the gateway's own work.

    .venv/bin/python bench/gateway_overhead.py [--seconds 2] [--rounds 3] [--structured-rounds 4]

The last line is JSON: {"added_p50_ms_c1", "throughput_ratio_c32", ...} (non-streaming, gateway vs direct), with
the streaming figures beside them (``stream_`` prefix) and the relay's (``relay_``). ``structured_tokens_per_s_ratio``
is what a structured answer costs the backend: a SmolLM2 miner (llama.cpp) is asked the same question with a
``json_schema`` and without, alternately, in the same run; the ratio is the schema's completion tokens per second
over the plain request's (only answers that came back signed, and for the schema, matched it, count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import uvloop

from bench_network import DIRECT, BenchNetwork, start_network, wait_http
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.inference.client import MinerClient
from gridmint.inference.http import HttpPool
from gridmint.inference.structured import answer_problem
from gridmint.node.processes import cpu_seconds
from gridmint.ports import free_port
from latency import p50_p99_ms

PAYLOAD = {"model": "echo", "messages": [{"role": "user", "content": "ping through the gateway"}], "max_tokens": 8}
Call = Callable[[], Awaitable[None]]


async def load(call: Call, concurrency: int, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def calls(net: BenchNetwork, miners: MinerClient, pool: HttpPool) -> dict[str, Call]:
    miner_url, miner = net.miners[0]
    body = orjson.dumps(PAYLOAD)
    stream_body = orjson.dumps({**PAYLOAD, "stream": True})
    headers = {"authorization": f"Bearer {net.api_key}", "content-type": "application/json"}

    async def direct() -> None:
        answer = await miners.call(miner_url, "/v1/chat/completions", miner, PAYLOAD)
        if answer.status != 200 or not answer.signed:
            raise SystemExit(f"direct call failed: {answer.status}")

    async def direct_stream() -> None:
        async with miners.stream(miner_url, "/v1/chat/completions", miner, {**PAYLOAD, "stream": True}) as sse:
            async for _ in sse.events():
                pass
            if not (sse.status == 200 and sse.done and sse.signed):
                raise SystemExit("direct stream failed")

    async def relay() -> None:
        answer = await miners.call(net.relay_url, "/v1/chat/completions", miner, PAYLOAD)
        if answer.status != 200 or not answer.signed:
            raise SystemExit(f"relayed call failed: {answer.status}")

    async def relay_stream() -> None:
        async with miners.stream(net.relay_url, "/v1/chat/completions", miner, {**PAYLOAD, "stream": True}) as sse:
            async for _ in sse.events():
                pass
            if not (sse.status == 200 and sse.done and sse.signed):
                raise SystemExit("relayed stream failed")

    async def gateway() -> None:
        answer = await pool.post(net.gateway_url + "/v1/chat/completions", body, headers, 30)
        if answer.status != 200:
            raise SystemExit(f"gateway call failed: {answer.status} {answer.body[:200]!r}")

    async def gateway_stream() -> None:
        async with pool.stream(net.gateway_url + "/v1/chat/completions", stream_body, headers, 30, 30) as answer:
            received = b"".join([chunk async for chunk in answer.chunks()])
            if answer.status != 200 or not received.endswith(b"data: [DONE]\n\n"):
                raise SystemExit(f"gateway stream failed: {answer.status} {received[-200:]!r}")

    return {"direct": direct, "relay": relay, "gateway": gateway, "direct_stream": direct_stream,
            "relay_stream": relay_stream, "gateway_stream": gateway_stream}


PATHS = ("direct", "relay", "gateway")


async def measure(net: BenchNetwork, seconds: float, rounds: int, levels: tuple[int, ...] = (1, 32),
                  modes: tuple[str, ...] = ("", "stream_")) -> dict[str, float]:
    """Rates, latencies and ratios per path; and per request, the CPU each process spent on it (``cpu_``): on a
    machine whose cores all processes share, throughput follows the sum."""
    results: dict[str, float] = {}
    pids = {"client": os.getpid(), "miner": net.miner_pids[0], "relay": net.relay_pid, "gateway": net.gateway_pid}
    allow = [url.removeprefix("http://") for url in (*(u for u, _ in net.miners), net.relay_url) if url]
    async with MinerClient(DIRECT, timeout_s=30, connections=64, allow=allow) as miners:
        pool = HttpPool(max_per_host=64)
        paths = calls(net, miners, pool)
        for name in paths:  # warm up every path's connections
            await load(paths[name], 8, 0.3)
        for concurrency in levels:
            for stream in modes:
                samples: dict[str, list[float]] = {path: [] for path in PATHS}
                elapsed = dict.fromkeys(PATHS, 0.0)
                cpu = {path: dict.fromkeys(pids, 0.0) for path in PATHS}
                for _ in range(rounds):  # interleaved, so all paths see the same machine
                    for path in PATHS:
                        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                        latencies, spent = await load(paths[path + ("_stream" if stream else "")], concurrency,
                                                      seconds)
                        for name, pid in pids.items():
                            cpu[path][name] += cpu_seconds(pid) - before[name]
                        samples[path] += latencies
                        elapsed[path] += spent
                c = concurrency
                for path in PATHS:
                    count = len(samples[path])
                    results[f"{stream}{path}_rps_c{c}"] = count / elapsed[path]
                    results[f"{stream}{path}_p50_ms_c{c}"], results[f"{stream}{path}_p99_ms_c{c}"] = \
                        p50_p99_ms(samples[path])
                    for name in pids:
                        results[f"{stream}{path}_cpu_{name}_us_c{c}"] = cpu[path][name] / count * 1e6
                for path, prefix in (("gateway", stream), ("relay", f"{stream}relay_")):
                    for stat in ("p50", "p99"):
                        results[f"{prefix}added_{stat}_ms_c{c}"] = (results[f"{stream}{path}_{stat}_ms_c{c}"]
                                                                    - results[f"{stream}direct_{stat}_ms_c{c}"])
                    results[f"{prefix}throughput_ratio_c{c}"] = (results[f"{stream}{path}_rps_c{c}"]
                                                                 / results[f"{stream}direct_rps_c{c}"])
        pool.close()
    return results


LLAMA_MINER_MAIN = """
import sys
from gridmint.chain.crypto import PrivateKey
from gridmint.inference.backends.llama_cpp import LlamaCppBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import CallerPolicy
app = MinerApp(PrivateKey(bytes.fromhex(sys.argv[1])), LlamaCppBackend(), CallerPolicy(validators={sys.argv[3]}))
serve_miner(app, "127.0.0.1", int(sys.argv[2]))
"""
LLAMA_MINER = PrivateKey(bytes([0x60]) * 32)
STRUCTURED_QUESTION = {"model": "smollm2-135m-instruct", "max_tokens": 48, "temperature": 0, "messages": [
    {"role": "user", "content": "Describe a city: its name, its country and how many people live there."}]}
CITY_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
    "type": "object", "properties": {"name": {"type": "string"}, "country": {"type": "string"},
                                     "population": {"type": "integer"}},
    "required": ["name", "country", "population"], "additionalProperties": False}}}


async def structured_ratio(url: str, rounds: int) -> dict[str, float]:
    """Completion tokens per second with the schema and without, alternating on one miner, and their ratio."""
    tokens = {"plain": 0, "schema": 0}
    spent = {"plain": 0.0, "schema": 0.0}
    miner = format_address(LLAMA_MINER.address)
    async with MinerClient(DIRECT, timeout_s=300, allow=[url.removeprefix("http://")]) as client:
        await client.call(url, "/v1/chat/completions", miner, {**STRUCTURED_QUESTION, "max_tokens": 4})  # warm-up
        for _ in range(rounds):
            for kind, payload in (("plain", STRUCTURED_QUESTION),
                                  ("schema", {**STRUCTURED_QUESTION, "response_format": CITY_FORMAT})):
                started = time.perf_counter()
                answer = await client.call(url, "/v1/chat/completions", miner, payload)
                elapsed = time.perf_counter() - started
                if answer.status != 200 or not answer.signed:
                    continue
                body = answer.json()
                text = body["choices"][0]["message"]["content"]
                if kind == "schema" and body["choices"][0]["finish_reason"] == "stop" and \
                        answer_problem(text, CITY_FORMAT) is not None:
                    continue
                tokens[kind] += body["usage"]["completion_tokens"]
                spent[kind] += elapsed
    rates = {kind: tokens[kind] / spent[kind] if spent[kind] else 0.0 for kind in tokens}
    return {"plain_tokens_per_s": rates["plain"], "structured_tokens_per_s": rates["schema"],
            "structured_tokens_per_s_ratio": rates["schema"] / rates["plain"] if rates["plain"] else 0.0}


def measure_structured(rounds: int) -> dict[str, float]:
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="gridmint-structured-bench-")) / "llama-miner.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-c", LLAMA_MINER_MAIN, LLAMA_MINER.seed.hex(), str(port),
                                    format_address(DIRECT.address)], stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process, timeout_s=120)
        return asyncio.run(structured_ratio(f"http://127.0.0.1:{port}", rounds))
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per path, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--structured-rounds", type=int, default=4, help="SmolLM2 requests of each kind (0: none)")
    args = parser.parse_args()
    net = start_network(miners=1, relay=True)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(measure(net, args.seconds, args.rounds))
    finally:
        net.stop()
    for stream in ("", "stream_"):
        label = "streaming    " if stream else "non-streaming"
        for c in (1, 32):
            print(f"{label} c{c:<2}: direct {results[f'{stream}direct_rps_c{c}']:7.0f} req/s "
                  f"p50 {results[f'{stream}direct_p50_ms_c{c}']:.2f} ms | gateway "
                  f"{results[f'{stream}gateway_rps_c{c}']:7.0f} req/s p50 {results[f'{stream}gateway_p50_ms_c{c}']:.2f}"
                  f" ms | added p50 {results[f'{stream}added_p50_ms_c{c}']:+.2f} ms, p99 "
                  f"{results[f'{stream}added_p99_ms_c{c}']:+.2f} ms | "
                  f"ratio {results[f'{stream}throughput_ratio_c{c}']:.2f} | bare relay: added p50 "
                  f"{results[f'{stream}relay_added_p50_ms_c{c}']:+.2f} ms, ratio "
                  f"{results[f'{stream}relay_throughput_ratio_c{c}']:.2f}")
    for stream in ("", "stream_"):
        label = "streaming    " if stream else "non-streaming"
        parts = {path: {name: results[f"{stream}{path}_cpu_{name}_us_c32"] for name in names}
                 for path, names in (("direct", ("client", "miner")), ("relay", ("client", "relay", "miner")),
                                     ("gateway", ("client", "gateway", "miner")))}
        print(f"{label} c32 CPU per request, µs: " + " | ".join(
            f"{path} = " + " + ".join(f"{name} {value:.0f}" for name, value in spent.items())
            + f" = {sum(spent.values()):.0f}" for path, spent in parts.items()))
    if args.structured_rounds:
        structured = measure_structured(args.structured_rounds)
        print(f"structured (SmolLM2, llama.cpp): {structured['structured_tokens_per_s']:.1f} tokens/s with a "
              f"json_schema, {structured['plain_tokens_per_s']:.1f} without: ratio "
              f"{structured['structured_tokens_per_s_ratio']:.2f}")
        results.update(structured)
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))


if __name__ == "__main__":
    main()
