"""A miner that serves validators well and customers badly loses its rank once probes come through a gateway.

One text subnet on a real devnode, a real gateway (`gridmint gateway run`), an honest SmolLM2 miner (`gridmint
miner run --backend llama-cpp`) and a two-faced one (``two_faced_miner.py``: SmolLM2 for callers with a validator
permit, the echo backend under SmolLM2's name for everyone else). First the threat, measured with the validator's
own scorer: asked directly with the validator's hotkey, the two-faced miner scores like the honest one; asked
through the gateway, it scores 0. Then the defence: a real validator (`gridmint validator run --probe-gateway`)
whose challenges go through the gateway as an ordinary consumer's (a credit line of an account that is not the
validator's, ``provider.only`` naming the miner under test). Within 3 epochs of its start, with commit-reveal on,
the two-faced miner's incentive is under 0.1 and the honest one's over 0.8.
"""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

import pytest

from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from gridmint.gateway.keys import gateway_at
from gridmint.inference.client import MinerClient
from gridmint.inference.validator.probes import GatewayProbes, ProbeGateway
from gridmint.inference.validator.scoring import TextScorer
from tests.support import gateway_network as network
from tests.support.live_subnet import live_subnet
from tests.support.processes import start_server
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

ONE = 1 << 30
MODEL = "smollm2-135m-instruct"
TEMPO = 200  # blocks of 0.05 s: an epoch of about 10 s, several validator rounds each


async def _scores(scorer: TextScorer, ask: Any, hotkeys: dict[str, str]) -> dict[str, float]:
    """Each miner's score on one fresh challenge, asked the way ``ask`` asks."""
    challenge = scorer.draw(random.Random(11))
    scores = {}
    for name, hotkey in hotkeys.items():
        answer = await ask(challenge, hotkey)
        assert answer.status == 200 and answer.signed, (name, answer)
        scores[name] = scorer.score(challenge, answer.json())
    return scores


def test_a_miner_that_serves_validators_well_and_customers_badly_loses_its_rank(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("owner", "val", "honest", "twofaced")
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=TEMPO, others=("gw", "prober")) as live:
        hotkeys = {name: open_wallet(name, live.wallets).hotkey_address("default") for name in names[2:]}
        validator_key = open_wallet("val", live.wallets).hotkey("default")
        gateway = network.start_gateway(tmp_path, "gw", miners=("honest", "twofaced"))
        honest = network.start_miner(tmp_path, "honest", 1, "llama-cpp", "0.001")
        port = network.miner_port(tmp_path, "twofaced")
        twofaced = start_server("twofaced", ["--wallet", "twofaced", "--netuid", "1", "--port", str(port), "--price",
                                             "0.001"], tmp_path, port, module="tests.e2e.two_faced_miner")
        validator = None
        try:
            network.wait_for_models(gateway, MODEL)
            network.wait_for_miners(gateway, 2)
            live.run("credit", "open", gateway.url, "50", "--wallet", "prober")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "prober")["api_key"]
            with ChainClient(live.node.url) as client:
                probe_gateway = ProbeGateway(gateway.url, api_key, gateway_at(client, gateway.url))

            # 1. The threat: probed directly, the two-faced miner looks honest; probed as a customer, it is not.
            # (a text probe: through the gateway a structured probe's junk answer is not even passed on, a 503)
            scorer = TextScorer(structured_share=0.0)
            allow = [f"127.0.0.1:{network.miner_port(tmp_path, name)}" for name in names[2:]]
            urls = {hotkeys[name]: f"http://127.0.0.1:{network.miner_port(tmp_path, name)}" for name in names[2:]}

            async def measure() -> tuple[dict[str, float], dict[str, float]]:
                async with MinerClient(validator_key, timeout_s=60, allow=allow) as direct, \
                        GatewayProbes(probe_gateway) as probes:
                    direct_scores = await _scores(scorer, lambda c, h: direct.call(
                        urls[h], c.path, h, c.payload, timeout_s=60), hotkeys)
                    gateway_scores = await _scores(scorer, lambda c, h: probes.call(
                        c.path, h, c.payload, timeout_s=60), hotkeys)
                return direct_scores, gateway_scores

            direct_scores, gateway_scores = asyncio.run(measure())
            assert direct_scores["honest"] > 0.8 and direct_scores["twofaced"] > 0.8, direct_scores
            assert gateway_scores["honest"] > 0.8 and gateway_scores["twofaced"] == 0.0, gateway_scores

            # 2. The defence: a validator whose probes go through the gateway. Its epochs count from when it is
            # ready (its reference model loaded), not from when its process was started: on a loaded machine the
            # loading alone can take an epoch of 10 s.
            validator = network.start_validator(tmp_path, "--interval", "1", "--timeout", "60", "--probe-gateway",
                                                gateway.url, env={"GRIDMINT_PROBE_API_KEY": api_key})
            wait_for(lambda: "probing through the gateway" in validator.log(), "the validator to be ready",
                     timeout_s=120)
            with ChainClient(live.node.url) as client:
                started_epoch = int(client.query("/subnets/1")["epoch"])
            uid = {entry["hotkey"]: entry["uid"] for entry in live.metagraph()["uids"]}

            def ranked(graph: dict[str, Any]) -> bool:
                incentive = {name: graph["uids"][uid[hotkeys[name]]]["incentive"] for name in names[2:]}
                return incentive["honest"] > 0.8 * ONE and incentive["twofaced"] < 0.1 * ONE

            graph = live.wait_for(ranked, "the honest miner ranked first", timeout_s=4 * TEMPO * 0.05 + 60)
            with ChainClient(live.node.url) as client:
                epochs = int(client.query("/subnets/1")["epoch"]) - started_epoch
            incentive = {name: graph["uids"][uid[hotkeys[name]]]["incentive"] / ONE for name in names[2:]}
            print(f"\nscores asked directly {direct_scores}, through the gateway {gateway_scores}; ranked after "
                  f"{epochs} epochs: incentive {incentive}")
            assert epochs <= 3, f"the ranking took {epochs} epochs"
            assert graph["uids"][uid[hotkeys["twofaced"]]]["incentive"] < 0.1 * ONE
            validator_log = validator.log()
            assert "probing through the gateway" in validator_log and "Traceback" not in validator_log
            assert validator.process.poll() is None, validator_log[-3000:]
            scored = re.findall(rf"UID {uid[hotkeys['twofaced']]} \(\S+ at \S+\): score ([0-9.]+)", validator_log)
            assert scored and set(scored) == {"0.000"}, scored  # every probe met the customers' face
        finally:
            if validator is not None:
                validator.stop()
            twofaced.stop()
            honest.stop()
            gateway.stop()
