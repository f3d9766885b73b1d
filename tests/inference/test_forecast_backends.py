"""Forecast backends and the miner's /v1/forecast: shapes, determinism, a real forecaster that beats the naive
walk on the validator's own series, and the signed answer."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import httpx
import numpy as np
import orjson
import pytest

from gridmint.chain.crypto import format_address
from gridmint.client.signing import NONCE, sign_request, verify_answer
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.backends.forecast import MIN_SAMPLES, STOP, ForecastStoppedError, NaiveBackend
from gridmint.inference.backends.registry import load_backend
from gridmint.inference.forecast_wire import (
    Forecast,
    ForecastRequest,
    Series,
    parse_forecast_answer,
    parse_forecast_request,
)
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.inference.validator.forecast_scoring import crps_over_increments
from gridmint.inference.validator.series import HiddenRegimeSource
from tests.support.chain import key

MINER, VALIDATOR = key("forecast-miner-hot"), key("forecast-validator-hot")


def block_hash(height: int) -> bytes:
    return hashlib.sha256(b"block" + height.to_bytes(8, "big")).digest()


def request(y: np.ndarray, paths: int = 50, quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)) -> ForecastRequest:
    return ForecastRequest("naive", 12, (Series("s", y),), paths, quantiles)


def test_naive_answers_the_shape_asked_and_the_same_request_gets_the_same_answer() -> None:
    y = np.cumsum(np.random.default_rng(1).normal(size=64))
    (forecast,) = NaiveBackend().forecast(request(y))
    assert forecast.paths is not None and forecast.paths.shape == (50, 12)
    assert np.all(forecast.mean == y[-1])
    assert np.all(forecast.quantiles[0.1] <= forecast.quantiles[0.5])
    assert np.all(forecast.quantiles[0.5] <= forecast.quantiles[0.9])
    (again,) = NaiveBackend().forecast(request(y))
    assert again.paths is not None and np.array_equal(forecast.paths, again.paths)
    (other,) = NaiveBackend().forecast(request(y + 1))
    assert other.paths is not None and not np.array_equal(other.paths - 1, forecast.paths)
    (none,) = NaiveBackend().forecast(request(y, paths=0))
    assert none.paths is None and MIN_SAMPLES >= 100  # quantiles still come from enough simulated paths


def test_statsmodels_beats_the_naive_walk_on_hidden_regime_series() -> None:
    pytest.importorskip("statsmodels")
    smart, naive = load_backend("statsmodels"), NaiveBackend()
    source = HiddenRegimeSource(block_hash)
    losses = np.zeros(2)
    for index in range(16):
        spec = source.draw(bytes([index]) * 16, 1_000 + 40 * index, 20, 12)
        history = source.history_of(spec)
        asked = ForecastRequest("m", 12, (Series("s", history),), 100)
        field = np.stack([backend.forecast(asked)[0].paths for backend in (smart, naive)])  # type: ignore[attr-defined]
        losses += crps_over_increments(field, float(history[-1]), source.outcome_of(spec), (1, 3, 12))
    assert losses[0] < 0.95 * losses[1], losses  # 0.92 of it when written


def post(app: MinerApp, body: bytes, path: str = "/v1/forecast") -> tuple[httpx.Response, dict[str, str]]:
    headers = sign_request(VALIDATOR, format_address(MINER.address), body)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://miner") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go()), headers


def miner(backend: object) -> MinerApp:
    return MinerApp(MINER, backend, CallerPolicy(validators={format_address(VALIDATOR.address)}))  # type: ignore[arg-type]


def test_the_miner_answers_a_forecast_signed_and_refuses_what_it_does_not_serve() -> None:
    payload = {"model": "naive", "horizon": 6, "paths": 20, "quantiles": [0.1, 0.9],
               "series": [{"id": "load", "y": list(range(30))}]}
    app = miner(NaiveBackend())
    response, headers = post(app, orjson.dumps(payload))
    assert response.status_code == 200, response.text
    verify_answer(dict(response.headers), response.content, format_address(MINER.address), int(headers[NONCE]),
                  format_address(VALIDATOR.address))
    (forecast,) = parse_forecast_answer(parse_forecast_request(payload), response.json())
    assert forecast.paths is not None and forecast.paths.shape == (20, 6)
    wrong_model, _ = post(app, orjson.dumps({**payload, "model": "gpt"}))
    assert wrong_model.status_code == 400 and "not served" in wrong_model.text
    bad, _ = post(app, orjson.dumps({**payload, "horizon": 0}))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "inference/bad_request"
    chat, _ = post(app, orjson.dumps({"model": "naive", "messages": [{"role": "user", "content": "hi"}]}),
                   "/v1/chat/completions")
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "unsupported"
    echo, _ = post(miner(EchoBackend()), orjson.dumps({**payload, "model": "echo"}))
    assert echo.status_code == 400 and echo.json()["error"]["code"] == "unsupported"


class GatedBackend(NaiveBackend):
    """The naive walk, holding its first series until the test opens the gate, counting the series it forecasts."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.forecast_series = 0

    def forecast_one(self, request: ForecastRequest, series: Series) -> Forecast:
        self.gate.wait(30)
        self.forecast_series += 1
        return super().forecast_one(request, series)


def test_a_forecast_whose_caller_timed_out_stops_at_its_next_series() -> None:
    """Red team: a thread cannot be cancelled, so a forecast that timed out (504) ran every remaining series for
    nobody, and those queued on statsmodels' lock ran in turn after their callers had left. Now the miner sets
    ``STOP`` once the caller is gone and the backend stops at its next series."""
    backend = GatedBackend()
    app = MinerApp(MINER, backend, CallerPolicy(validators={format_address(VALIDATOR.address)}),
                   request_timeout_s=0.2)
    body = orjson.dumps({"model": "naive", "horizon": 6, "series": [{"id": str(i), "y": [1.0, 2.0, 4.0]}
                                                                    for i in range(8)]})
    headers = sign_request(VALIDATOR, format_address(MINER.address), body)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://miner") as client:
            answer = await client.post("/v1/forecast", content=body, headers=headers)
        backend.gate.set()  # the caller has its answer: let the worker thread go on
        return answer

    response = asyncio.run(go())  # returns once the worker thread is done (the loop's executor is shut down)
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout", response.text
    assert backend.forecast_series == 1
    with pytest.raises(ForecastStoppedError):  # the same check, without a miner: a set STOP stops at once
        stop = threading.Event()
        stop.set()
        token = STOP.set(stop)
        try:
            NaiveBackend().forecast(ForecastRequest("naive", 2, (Series("s", np.arange(3.0)),)))
        finally:
            STOP.reset(token)
