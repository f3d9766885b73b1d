"""``POST /v1/forecast``: the prediction modality's request and answer, parsed with bounds.

Request: ``{"model": str, "horizon": int, "series": [{"id": str, "y": [number, ...]}], "paths": int,
"quantiles": [q, ...], "season_length": int}``. ``paths`` (0 = none) asks for that many simulated future paths per
series, ``quantiles`` (each strictly between 0 and 1) for those quantiles at every step; the mean forecast always
comes back. Answer: ``{"model": str, "forecasts": [{"id": str, "mean": [H], "quantiles": {"0.1": [H], ...},
"paths": [[H], ...]}]}`` in the order of the request's series. The miner signs the answer like every other.

Every bound holds before a backend sees the request (history length, series count, horizon, paths, and the floats a
whole answer may hold), and ``parse_forecast_answer`` holds an answer to the shape its request asked for, so a
validator or a gateway never indexes into a malformed answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gridmint.inference.wire import BAD_REQUEST

FORECAST_PATH = "/v1/forecast"
PREDICTION = "prediction"
MAX_SERIES = 64
MAX_HISTORY = 10_000
MIN_HISTORY = 2
MAX_HORIZON = 1_000
MAX_PATHS = 1_000
MAX_QUANTILES = 32
# Floats in one answer (series × horizon × (paths + quantiles + 1)), so that the largest answer fits in what a
# caller reads (``http.MAX_ANSWER_BYTES``, 16 MiB): a float is at most 25 bytes of JSON with its comma
# ("-2.2250738585072014e-308,"), 600,000 of them 15 MB, and ids, keys and brackets stay under a megabyte. At 2,000,000
# a miner could be asked for ~40 MB it computed in full, only for every caller to drop it as oversize: unpaid work,
# and a failure counted against the miner.
MAX_ANSWER_VALUES = 600_000
MAX_ID_BYTES = 128
# The history a series is metered as at least: a model's fit costs about the same from 8 points to a few hundred
# (three ARIMA fits, ~45–85 ms), so a short series pays as the 256 points the gateway asks TimeGPT clients for.
MIN_METERED_HISTORY = 256
# The largest magnitude a history value may have: the backends square differences of values (a step's spread, a
# likelihood), and from ~1e154 on that overflows, so a history of 1e200s made every miner answer NaN (null in JSON)
# that every caller refuses. 1e100 leaves the squares finite and any real quantity room.
MAX_ABS_VALUE = 1e100

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    id: str
    y: Floats  # the history, oldest first


@dataclass(frozen=True)
class ForecastRequest:
    model: str
    horizon: int
    series: tuple[Series, ...]
    paths: int = 0
    quantiles: tuple[float, ...] = ()
    season_length: int = 1


@dataclass(frozen=True)
class Forecast:
    id: str
    mean: Floats  # [horizon]
    quantiles: dict[float, Floats]  # q -> [horizon]
    paths: Floats | None  # [paths, horizon], or None when none were asked


def _whole(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BAD_REQUEST(f"{name}: expected a whole number from {low} to {high}")
    return value


def _finite_array(value: Any, what: str, low: int, high: int) -> Floats:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise BAD_REQUEST(f"{what}: expected a list of {low} to {high} numbers")
    if not all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value):
        raise BAD_REQUEST(f"{what}: expected numbers only")
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise BAD_REQUEST(f"{what}: expected finite numbers (no NaN or infinity)")
    if len(array) and float(np.abs(array).max()) > MAX_ABS_VALUE:
        raise BAD_REQUEST(f"{what}: expected numbers of magnitude at most {MAX_ABS_VALUE:g} (rescale the series)")
    return array


def _numeric_block(value: Any, what: str, shape: tuple[int, ...]) -> Floats:
    """A nested list of numbers of exactly ``shape``, converted by numpy in one pass (an answer of 100 paths of 288
    steps is 28,800 numbers: a check per item in Python would cost more than scoring them)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged lists
        raise BAD_REQUEST(f"{what}: expected a list of shape {list(shape)} of numbers") from None
    if array.shape != shape or array.dtype.kind not in "iuf":  # text, null or objects make another dtype
        raise BAD_REQUEST(f"{what}: expected a list of shape {list(shape)} of numbers")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise BAD_REQUEST(f"{what}: expected finite numbers (no NaN or infinity)")
    return array


def parse_forecast_request(body: Any) -> ForecastRequest:
    if not isinstance(body, dict):
        raise BAD_REQUEST("expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise BAD_REQUEST("model: expected the name of a model this miner serves")
    horizon = _whole(body, "horizon", 0, 1, MAX_HORIZON)
    paths = _whole(body, "paths", 0, 0, MAX_PATHS)
    season_length = _whole(body, "season_length", 1, 1, 366)
    raw_quantiles = body.get("quantiles", [])
    if not isinstance(raw_quantiles, list) or len(raw_quantiles) > MAX_QUANTILES or not all(
            isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q < 1 for q in raw_quantiles):
        raise BAD_REQUEST(f"quantiles: expected up to {MAX_QUANTILES} numbers strictly between 0 and 1")
    quantiles = tuple(sorted({float(q) for q in raw_quantiles}))
    raw_series = body.get("series")
    if not isinstance(raw_series, list) or not 1 <= len(raw_series) <= MAX_SERIES:
        raise BAD_REQUEST(f"series: expected 1 to {MAX_SERIES} series of {{id, y}}")
    if len(raw_series) * horizon * (paths + len(quantiles) + 1) > MAX_ANSWER_VALUES:
        raise BAD_REQUEST(f"series × horizon × (paths + quantiles + 1) is over {MAX_ANSWER_VALUES} values; ask for "
                          "fewer series, a shorter horizon or fewer paths")
    series = []
    for index, item in enumerate(raw_series):
        if not isinstance(item, dict):
            raise BAD_REQUEST(f"series[{index}]: expected {{id: text, y: [numbers]}}")
        series_id = item.get("id", str(index))
        if not isinstance(series_id, str) or len(series_id.encode()) > MAX_ID_BYTES:
            raise BAD_REQUEST(f"series[{index}].id: expected text of at most {MAX_ID_BYTES} bytes")
        series.append(Series(series_id, _finite_array(item.get("y"), f"series[{index}].y", MIN_HISTORY,
                                                      MAX_HISTORY)))
    if len({s.id for s in series}) != len(series):
        raise BAD_REQUEST("series: every series needs its own id")
    return ForecastRequest(model, horizon, tuple(series), paths, quantiles, season_length)


def forecast_units(request: ForecastRequest) -> int:
    """What a forecast is metered in, where text counts tokens: every number in and out — the history's points
    (what the model fits, as a prompt's tokens), at least ``MIN_METERED_HISTORY`` a series, and, per series and
    step, the point forecast, each path and each quantile (what it answers, as completion tokens). Counting series
    × steps alone let 1,000 paths and 10,000 points of history per series cost what one point forecast costs; counting
    short histories as they are let 64 series of 8 points and one step (576 numbers) buy 64 model fits, ~19× the CPU
    per number of a typical request on the statsmodels backend (bench/forecast_cost.py)."""
    history = sum(max(len(series.y), MIN_METERED_HISTORY) for series in request.series)
    return history + len(request.series) * request.horizon * (1 + request.paths + len(request.quantiles))


def answer_bytes_bound(request: ForecastRequest) -> int:
    """The most bytes the JSON of an answer to ``request`` takes when every number is at its longest (25 bytes
    with its comma) and every id and model name at its most escaped: a longer body is padding, which a validator
    keeping answers for their proofs must not keep."""
    values = len(request.series) * request.horizon * (1 + request.paths + len(request.quantiles))
    per_series = 6 * MAX_ID_BYTES + 64 + 32 * len(request.quantiles) + 3 * request.paths
    return 25 * values + len(request.series) * per_series + 2048


def forecast_payload(request: ForecastRequest) -> dict[str, Any]:
    """The JSON body of ``request`` (what a validator or a gateway sends a miner)."""
    return {"model": request.model, "horizon": request.horizon, "paths": request.paths,
            "quantiles": list(request.quantiles), "season_length": request.season_length,
            "series": [{"id": s.id, "y": s.y.tolist()} for s in request.series]}


def _quantile_key(q: float) -> str:
    return repr(q)


def forecast_answer(model: str, forecasts: list[Forecast]) -> dict[str, Any]:
    """The JSON body of a miner's answer. A forecast holding a value that is not finite is refused
    (``bad_request``) instead of signed: JSON has no NaN (orjson writes null), so every caller would drop the answer
    and count it as the miner's failure, after the miner did the work."""
    for forecast in forecasts:
        blocks = (forecast.mean, *forecast.quantiles.values(), *(() if forecast.paths is None else (forecast.paths,)))
        if not all(np.isfinite(block).all() for block in blocks):
            raise BAD_REQUEST(f"the model's forecast of series '{forecast.id[:40]}' is not finite: this model cannot "
                              "forecast that history")
    return {"model": model, "object": "forecast", "forecasts": [
        {"id": f.id, "mean": f.mean.tolist(),
         "quantiles": {_quantile_key(q): values.tolist() for q, values in f.quantiles.items()},
         **({} if f.paths is None else {"paths": f.paths.tolist()})} for f in forecasts]}


def parse_forecast_answer(request: ForecastRequest, body: Any) -> list[Forecast]:
    """A miner's answer held to the shape ``request`` asked for; anything else raises ``bad_request``."""
    if not isinstance(body, dict) or not isinstance(body.get("forecasts"), list):
        raise BAD_REQUEST("answer: expected {forecasts: [...]}")
    if len(body["forecasts"]) != len(request.series):
        raise BAD_REQUEST(f"answer: {len(body['forecasts'])} forecasts for {len(request.series)} series")
    forecasts = []
    for index, (item, series) in enumerate(zip(body["forecasts"], request.series, strict=True)):
        where = f"forecasts[{index}]"
        if not isinstance(item, dict) or item.get("id") != series.id:
            raise BAD_REQUEST(f"{where}: expected the forecast of series '{series.id[:40]}'")
        mean = _numeric_block(item.get("mean"), f"{where}.mean", (request.horizon,))
        raw_quantiles = item.get("quantiles", {})
        if not isinstance(raw_quantiles, dict):
            raise BAD_REQUEST(f"{where}.quantiles: expected an object of quantile -> values")
        quantiles = {}
        for q in request.quantiles:
            quantiles[q] = _numeric_block(raw_quantiles.get(_quantile_key(q)), f"{where}.quantiles[{q}]",
                                          (request.horizon,))
        paths = None
        if request.paths:
            paths = _numeric_block(item.get("paths"), f"{where}.paths", (request.paths, request.horizon))
        forecasts.append(Forecast(series.id, mean, quantiles, paths))
    return forecasts


def interval_bounds(level: float) -> tuple[float, float]:
    """The quantiles that bound a central prediction interval of ``level`` percent (rounded, so that 80 asks for
    0.1 and 0.9, not 0.09999999999999998)."""
    return round(0.5 - level / 200, 10), round(0.5 + level / 200, 10)


def check_level(level: Any) -> list[float]:
    """Prediction-interval levels in percent (TimeGPT's ``level``), each in (0, 100) and short of 100 by enough that
    its bounds stay strictly between 0 and 1 once rounded: 99.99999999999 would ask miners for the quantile 1.0,
    which every miner refuses."""
    if not isinstance(level, list) or len(level) > MAX_QUANTILES // 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v < 100
            and interval_bounds(v)[0] > 0 and interval_bounds(v)[1] < 1 for v in level):
        raise BAD_REQUEST(f"level: expected up to {MAX_QUANTILES // 2} numbers strictly between 0 and 100 (at most "
                          "99.9999999)")
    return [float(v) for v in level]
