"""One validator scoring round over 64 miners: what a text subnet's validator pays per round and per miner.

The miners are 64 echo backends, each with its own hotkey and port, served by one separate process (64 uvicorn
servers on one event loop), so that none of their work is counted as the validator's. They answer under the
reference model's name, so every answer goes through the whole text scoring: one llama.cpp pass of SmolLM2 over
prompt and answer (an answer under another name would be refused before the model runs, which costs nothing).
This process is the validator: ``Validator.round`` as the validator loop runs it (signed calls to every miner at
once, signature checks, scoring, moving averages), with one thing replaced: the metagraph is built here rather
than fetched from a node (``metagraph_query.py`` measures that fetch: 26–30 ms for 4,096 UIDs).

Measured per round (a fresh challenge each): wall time and the validator process's CPU time (all its threads),
per miner. Baseline, in the same run and interleaved with the rounds: the scoring alone, i.e. ``TextScorer.score``
on the same challenge's 64 answers (fetched beforehand) one after the other with no network; and once, the same
with the prompt run again for every answer (how the scorer worked before it kept the prompt's pass across a
round). A round and its baseline share the challenge (the validator's challenges are seeded, and each round
starts from the generator state its baseline's challenge was drawn from): challenges differ in length, so two
different ones differ by more than the round's own work. The challenges are plain ones (``structured_share`` 0):
the fifth of probes that ask for a structured answer run no model pass over the answers, only a comparison with a
reference generated once, and take about a second a round here. "The round beyond scoring" is the median of each
round's difference from its own baseline. Only rounds in which every miner answered, signed, are counted.

    .venv/bin/python bench/validator_round.py [--miners 64] [--rounds 5]

The last line is JSON: {"round_s", "cpu_ms_per_miner", "scoring_alone_s", "scoring_cpu_ms_per_miner",
"beyond_scoring_s", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.client.metagraph import Metagraph
from gridmint.inference.backends.llama_cpp import SMOLLM2_MODEL
from gridmint.inference.client import MinerClient
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.scoring import TextScorer
from gridmint.ports import free_port

VALIDATOR_SEED = b"\x22" * 32
VALIDATOR_RNG_SEED = 5  # the same challenges every run, so runs compare

MINERS_MAIN = """
import asyncio, json, sys
import uvicorn
from gridmint.chain.crypto import PrivateKey
from gridmint.inference.asgi import CoalescingHttpToolsProtocol
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
validator, model, miners = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

async def main():
    servers = []
    for seed, port in miners:
        app = MinerApp(PrivateKey(bytes.fromhex(seed)), EchoBackend(model=model), CallerPolicy(validators={validator}),
                       max_concurrency=256)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                http=CoalescingHttpToolsProtocol, lifespan="on", server_header=False,
                                date_header=False, timeout_keep_alive=30)  # as serve_miner
        servers.append(uvicorn.Server(config))
    await asyncio.gather(*(server.serve() for server in servers))

asyncio.run(main())
"""


def miner_seeds(count: int) -> list[bytes]:
    return [bytes([index % 256, index // 256]) + b"\x33" * 30 for index in range(count)]


def wait_until_up(ports: list[int], process: subprocess.Popen[bytes], limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    pending = list(ports)
    with httpx.Client(timeout=1.0) as http:
        while pending:
            if process.poll() is not None:
                raise SystemExit("the miners' process exited before serving")
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(pending)} miners did not come up in {limit_s:.0f} s")
            try:
                http.get(f"http://127.0.0.1:{pending[0]}/health")
                pending.pop(0)
            except httpx.HTTPError:
                time.sleep(0.2)


def process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Notes(logging.Handler):
    """The validator's per-miner log lines (it logs every miner's score and why, at INFO), kept to count successes."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("UID %d"):
            self.notes.append(str(record.args[4]) if isinstance(record.args, tuple) else "")


async def one_round(validator: Validator, client: MinerClient, notes: Notes, count: int) -> tuple[float, float]:
    """Wall and CPU seconds of one ``Validator.round``; exits if any miner failed to answer, signed."""
    notes.notes.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    scores = await validator.round(client)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    failed = [note for note in notes.notes if not note.startswith("quality")]
    if len(scores) != count or len(notes.notes) != count or failed:
        raise SystemExit(f"{len(failed)} of {count} miners failed: {failed[:3]}")
    return wall, cpu


@dataclass(frozen=True)
class Baseline:
    rng_state: Any  # the validator's generator before the challenge was drawn: its round draws the same one
    challenge: Any
    bodies: list[Any]


async def answers_for_baseline(validator: Validator, client: MinerClient, urls: list[str],
                               hotkeys: list[str]) -> Baseline:
    rng_state = validator.rng.getstate()
    challenge = validator.scorer.draw(validator.rng)
    answers = await asyncio.gather(*(client.call(url, challenge.path, hotkey, challenge.payload)
                                     for url, hotkey in zip(urls, hotkeys, strict=True)))
    return Baseline(rng_state, challenge, [answer.json() for answer in answers])


def score_alone(scorer: TextScorer, challenge: Any, bodies: list[Any],
                reuse_prompt: bool = True) -> tuple[float, float]:
    """Wall and CPU seconds of scoring these answers one after another, no network."""
    scorer._evaluated_prompt = []  # a new challenge's prompt is run once, as in a round
    wall, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        if not reuse_prompt:
            scorer._evaluated_prompt = []
        scorer.score(challenge, body)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--miners", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    validator_key = PrivateKey(VALIDATOR_SEED)
    validator_address = format_address(validator_key.address)
    seeds = miner_seeds(args.miners)
    hotkeys = [format_address(PrivateKey(seed).address) for seed in seeds]
    ports = [free_port() for _ in seeds]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    spec = json.dumps([[seed.hex(), port] for seed, port in zip(seeds, ports, strict=True)])
    miners = subprocess.Popen([sys.executable, "-c", MINERS_MAIN, validator_address, SMOLLM2_MODEL, spec])
    try:
        wait_until_up(ports, miners)
        scorer = TextScorer(structured_share=0.0)  # every answer through the model pass (see above)
        validator = Validator(validator_key, 1, "http://127.0.0.1:9", scorer, timeout_s=60, seed=VALIDATOR_RNG_SEED)
        graph = Metagraph(netuid=1, n=args.miners + 1, hotkey_bytes=b"")
        graph._decoded["hotkeys"] = [validator_address, *hotkeys]
        graph._decoded["endpoints"] = [None, *({"url": url} for url in urls)]
        Metagraph.fetch = classmethod(lambda cls, *_: graph)  # type: ignore[method-assign,assignment]

        notes = Notes()
        logger = logging.getLogger("gridmint.validator")
        logger.setLevel(logging.INFO)
        logger.addHandler(notes)
        logger.propagate = False

        async def run() -> dict[str, Any]:
            allow = [url.removeprefix("http://") for url in urls]  # the miners on loopback (the address guard)
            async with MinerClient(validator_key, timeout_s=60, connections=args.miners, allow=allow) as client:
                # The baseline's answers first, while every connection is fresh; each set is scored after a round.
                baseline = [await answers_for_baseline(validator, client, urls, hotkeys) for _ in range(args.rounds)]
                await one_round(validator, client, notes, args.miners)  # warm-up: connections, llama.cpp buffers
                rounds, alone = [], []
                miners_cpu = 0.0
                for base in baseline:  # interleaved, so both see the same moments of a shared machine
                    validator.rng.setstate(base.rng_state)  # the round draws its baseline's challenge
                    before = process_cpu_s(miners.pid)
                    rounds.append(await one_round(validator, client, notes, args.miners))
                    miners_cpu += process_cpu_s(miners.pid) - before
                    alone.append(score_alone(scorer, base.challenge, base.bodies))
                    print(f"  round {len(rounds)}: {rounds[-1][0]:.2f} s wall, {rounds[-1][1]:.2f} s CPU; "
                          f"scoring alone {alone[-1][0]:.2f} s wall, {alone[-1][1]:.2f} s CPU", flush=True)
            # Once: the same answers with the prompt run again for every answer, as the scorer did before it kept
            # the prompt's pass.
            no_reuse = score_alone(scorer, baseline[0].challenge, baseline[0].bodies, reuse_prompt=False)
            return {"rounds": rounds, "alone": alone, "miners_cpu": miners_cpu, "no_reuse": no_reuse}

        measured = asyncio.run(run())
        validator.close()
    finally:
        miners.terminate()
        miners.wait(timeout=30)

    count = args.miners
    round_s = statistics.median(wall for wall, _ in measured["rounds"])
    cpu_ms = statistics.median(cpu for _, cpu in measured["rounds"]) * 1000 / count
    alone_s = statistics.median(wall for wall, _ in measured["alone"])
    alone_cpu_ms = statistics.median(cpu for _, cpu in measured["alone"]) * 1000 / count
    pairs = list(zip(measured["rounds"], measured["alone"], strict=True))
    beyond_s = statistics.median(own[0] - alone[0] for own, alone in pairs)
    beyond_cpu_ms = statistics.median(own[1] - alone[1] for own, alone in pairs) * 1000 / count
    miners_cpu_ms = measured["miners_cpu"] * 1000 / (count * args.rounds)
    no_reuse_s, no_reuse_cpu = measured["no_reuse"]
    print(f"{count} echo miners, {args.rounds} rounds (median), os.cpu_count() = {os.cpu_count()}")
    print(f"  validator round:          {round_s:7.3f} s wall, {cpu_ms:6.1f} ms CPU per miner "
          f"(rounds: {', '.join(f'{wall:.2f}' for wall, _ in measured['rounds'])} s)")
    print(f"  baseline, scoring alone:  {alone_s:7.3f} s wall, {alone_cpu_ms:6.1f} ms CPU per miner "
          f"(the same challenges' {count} answers, scored one after another, no network)")
    print(f"  scoring alone, prompt run for every answer (once): {no_reuse_s:.3f} s wall, "
          f"{no_reuse_cpu * 1000 / count:.1f} ms CPU per miner")
    print(f"  the round beyond scoring: {beyond_s:7.3f} s wall, {beyond_cpu_ms:6.1f} ms CPU per miner (median of each "
          f"round's difference from its baseline: signed calls, signature checks, JSON, threads); "
          f"the miners spent {miners_cpu_ms:.1f} ms each")
    print(json.dumps({"round_s": round(round_s, 4), "cpu_ms_per_miner": round(cpu_ms, 2),
                      "scoring_alone_s": round(alone_s, 4), "scoring_cpu_ms_per_miner": round(alone_cpu_ms, 2),
                      "miners": count, "rounds": args.rounds, "miner_cpu_ms_per_answer": round(miners_cpu_ms, 2),
                      "no_reuse_cpu_ms_per_miner": round(no_reuse_cpu * 1000 / count, 2),
                      "beyond_scoring_s": round(beyond_s, 4),
                      "beyond_scoring_cpu_ms_per_miner": round(beyond_cpu_ms, 2)}))


if __name__ == "__main__":
    main()
