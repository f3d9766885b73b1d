"""Forecast backends: what a prediction miner runs behind ``POST /v1/forecast``.

Every backend answers through sample paths: it simulates ``max(paths asked, MIN_SAMPLES)`` futures per series and
reads the quantiles asked off them, so the paths, the quantiles and the mean of one answer always agree. Paths are
drawn from a generator seeded by the request itself, so the same request gets the same answer (a validator that
repeats a probe sees no drift it could blame on the miner, and a miner cannot be caught out by its own noise).

``naive`` is the baseline every forecaster must beat: a random walk from the last value whose steps have the spread
of the history's own steps (Synth's baseline is the same idea in log-prices). Real forecasters live in modules of
their own (``forecast_statsmodels``), imported only when chosen.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

import numpy as np

from gridmint.inference.backends.base import (
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
    UnsupportedError,
)
from gridmint.inference.forecast_wire import PREDICTION, Floats, Forecast, ForecastRequest, Series

NAIVE_MODEL = "naive"
MIN_SAMPLES = 200  # paths simulated per series at least, so quantiles are read off enough of them


@runtime_checkable
class ForecastBackend(Protocol):
    name: str
    modality: str

    def models(self) -> list[str]: ...

    def forecast(self, request: ForecastRequest) -> list[Forecast]:
        """CPU-bound: the miner calls it in a worker thread."""
        ...


# Set by the miner around a forecast's worker thread (``asyncio.to_thread`` carries context variables into it) and
# set once the caller is gone: the request timed out, or the caller hung up. A thread cannot be stopped from outside,
# so without it a timed-out forecast ran to its end for nobody, and requests queued on statsmodels' lock each ran in
# turn after their callers had left: unpaid work a consumer could repeat, and validators' prompts waiting behind it.
STOP: ContextVar[threading.Event | None] = ContextVar("gridmint_forecast_stop", default=None)


class ForecastStoppedError(Exception):
    """The caller of a forecast left before it was done: the backend stops at the next series."""


def series_while_wanted(request: ForecastRequest) -> Iterator[Series]:
    """The request's series one at a time, stopping (``ForecastStoppedError``) once ``STOP`` is set."""
    stop = STOP.get()
    for series in request.series:
        if stop is not None and stop.is_set():
            raise ForecastStoppedError("the caller left before the forecast was done")
        yield series


def request_rng(request: ForecastRequest, series: Series) -> np.random.Generator:
    """A generator seeded by what was asked: model, horizon and the series' id and history."""
    digest = hashlib.sha256(b"gridmint/forecast/v1" + request.model.encode() + request.horizon.to_bytes(4, "big")
                            + series.id.encode() + series.y.tobytes()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def forecast_from_samples(request: ForecastRequest, series: Series, mean: Floats, samples: Floats) -> Forecast:
    """The answer for one series from ``samples`` [n, horizon]: the first ``request.paths`` of them and the
    quantiles asked, read off all of them."""
    quantiles = {q: np.quantile(samples, q, axis=0) for q in request.quantiles}
    paths = samples[:request.paths].copy() if request.paths else None
    return Forecast(series.id, mean, quantiles, paths)


def sample_count(request: ForecastRequest) -> int:
    return max(request.paths, MIN_SAMPLES)


def simulate_random_walk(last: float, step_sd: float, horizon: int, count: int, rng: np.random.Generator) -> Floats:
    return last + np.cumsum(rng.normal(0.0, step_sd, size=(count, horizon)), axis=1)


class ForecastOnly:
    """The text endpoints of a forecast backend: each refuses (400 ``unsupported``), so a forecast backend is a
    ``Backend`` the miner serves like any other and answers only ``/v1/forecast``."""

    modality = PREDICTION

    async def generate(self, request: Generation) -> GenerationResult:
        raise UnsupportedError("this miner serves forecasts (POST /v1/forecast), not text")

    def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        raise UnsupportedError("this miner serves forecasts (POST /v1/forecast), not text")

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        raise UnsupportedError("this miner serves forecasts (POST /v1/forecast), not embeddings")


class NaiveBackend(ForecastOnly):
    """The last value, and a random walk with the history's step spread around it."""

    name = "naive"

    def __init__(self, model: str = NAIVE_MODEL) -> None:
        self.model = model

    def models(self) -> list[str]:
        return [self.model]

    def forecast_one(self, request: ForecastRequest, series: Series) -> Forecast:
        steps = np.diff(series.y)
        step_sd = float(steps.std()) if len(steps) > 1 else 0.0
        samples = simulate_random_walk(float(series.y[-1]), step_sd, request.horizon, sample_count(request),
                                       request_rng(request, series))
        return forecast_from_samples(request, series, np.full(request.horizon, float(series.y[-1])), samples)

    def forecast(self, request: ForecastRequest) -> list[Forecast]:
        return [self.forecast_one(request, series) for series in series_while_wanted(request)]
