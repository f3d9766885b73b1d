"""Two dishonest prediction miners, for test_prediction_subnet.py, each a real miner process (announced on chain,
caller policy kept in step with the chain, signed answers):

- ``overconfident``: statsmodels' forecasts with every path pulled to a fifth of its distance from the mean — the
  same centre as the calibrated miner, a fan five times too narrow;
- ``copier``: no model at all; it forwards each request it gets to another miner (``--victim URL HOTKEY``, which
  must answer registered hotkeys) and sends the victim's forecasts on as its own, once it has seen them.

    python -m tests.e2e.prediction_miners --kind overconfident|copier --wallet NAME --netuid N --port PORT
        [--victim URL HOTKEY]
(wallets, node and password from GRIDMINT_WALLET_DIR, GRIDMINT_NODE and GRIDMINT_PASSWORD, as the CLI reads them)
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import orjson

from gridmint.chain.crypto import PrivateKey
from gridmint.cli.common import load_hotkey
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.client.metagraph import Metagraph
from gridmint.inference.backends.forecast import ForecastOnly
from gridmint.inference.backends.forecast_statsmodels import StatsmodelsBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.forecast_wire import (
    FORECAST_PATH,
    Forecast,
    ForecastRequest,
    forecast_payload,
    parse_forecast_answer,
)
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.runner import (
    Announcement,
    announce_if_changed,
    keep_policy_in_step,
    policy_from_metagraph,
)
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import CallerPolicy


class OverconfidentBackend(ForecastOnly):
    name = "overconfident"

    def __init__(self, shrink: float = 0.2) -> None:
        self.inner = StatsmodelsBackend("overconfident")
        self.shrink = shrink

    def models(self) -> list[str]:
        return self.inner.models()

    def forecast(self, request: ForecastRequest) -> list[Forecast]:
        narrowed = []
        for forecast in self.inner.forecast(request):
            paths = None if forecast.paths is None else \
                forecast.mean + self.shrink * (forecast.paths - forecast.paths.mean(axis=0))
            quantiles = {q: forecast.mean + self.shrink * (v - forecast.mean) for q, v in forecast.quantiles.items()}
            narrowed.append(Forecast(forecast.id, forecast.mean, quantiles, paths))
        return narrowed


class CopierBackend(ForecastOnly):
    name = "copier"

    def __init__(self, key: PrivateKey, victim_url: str, victim_hotkey: str, victim_model: str) -> None:
        self.key, self.victim_url, self.victim_hotkey, self.victim_model = key, victim_url, victim_hotkey, victim_model

    def models(self) -> list[str]:
        return ["copied"]

    def forecast(self, request: ForecastRequest) -> list[Forecast]:
        asked = ForecastRequest(self.victim_model, request.horizon, request.series, request.paths, request.quantiles,
                                request.season_length)

        async def ask() -> bytes:
            async with MinerClient(self.key, timeout_s=30, allow=[self.victim_url.split("//")[1]]) as client:
                answer = await client.call(self.victim_url, FORECAST_PATH, self.victim_hotkey, forecast_payload(asked))
                return answer.body

        return parse_forecast_answer(asked, orjson.loads(asyncio.run(ask())))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("overconfident", "copier"), required=True)
    for name in ("--wallet", "--netuid", "--port"):
        parser.add_argument(name, required=True)
    parser.add_argument("--victim", nargs=3, metavar=("URL", "HOTKEY", "MODEL"))
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the policy sync's chain calls, twice a second
    key = load_hotkey(args.wallet, "default", None, None)
    node, netuid, port = default_node_url(), int(args.netuid), int(args.port)
    backend: ForecastOnly = OverconfidentBackend() if args.kind == "overconfident" else CopierBackend(key, *args.victim)
    policy = CallerPolicy()
    with ChainClient(node) as client:
        announce_if_changed(client, key, netuid, Announcement(f"http://127.0.0.1:{port}", backend.models(), 0))
        policy_from_metagraph(Metagraph.fetch(client, netuid), policy)
        chain_id = client.chain_id()
    app = MinerApp(key, backend, policy, chain_id=chain_id)  # type: ignore[arg-type]
    app.background.append(lambda: keep_policy_in_step(app, node, netuid, 0.5))
    serve_miner(app, "127.0.0.1", port)


if __name__ == "__main__":
    main()
