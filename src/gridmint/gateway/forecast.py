"""TimeGPT's API in front of the prediction subnets, so that the ``nixtla`` client works unchanged but for
``base_url`` and ``api_key``.

Routes (what ``NixtlaClient`` calls; bodies as in its ``_payloads.py``):
- ``GET /v2/models`` -> ``{"models": [{"name": ...}]}``: TimeGPT's names (each means "the best-ranked miner of a
  prediction subnet"), every prediction model a miner announces, and ``subnet-<n>`` for each prediction subnet;
- ``GET /model_params?model=&freq=`` -> ``{"detail": {"input_size", "horizon"}}``: how much history the client
  sends (its ``level`` requests send ``3 × input_size + horizon`` points at most);
- ``POST /v2/forecast`` with ``{"series": {"y": [...], "sizes": [...], "X": null, ...}, "model", "h", "freq",
  "level", ...}`` -> ``{"mean": [...], "intervals": {"lo-80": [...], "hi-80": [...]} | null, "weights_x": null}``,
  every series' values one after another.

A forecast is admitted like a text request (API key, rate limit, credit line, miners at or below the line's price,
the worst case reserved), sent to the prediction miners best-ranked first as a signed ``/v1/forecast`` (one series
per TimeGPT series, quantiles for the interval bounds asked), failed over on anything but a signed answer of the
shape asked (the consumer gets TimeGPT's shape, not the miner's signed body, so no miner proof headers are
forwarded), and metered in numbers where text counts tokens — the history's points in (at least 256 a series), and
per series and step the mean, each path and each quantile out: a miner's price per 1k tokens is its price per 1k
numbers, and the miner counts the same units in its receipts (``forecast_wire.forecast_units``), so the usage settles
on chain like tokens. Exogenous variables, fine-tuning, ``stream`` and compressed bodies are refused with 400 naming
what is not supported, and anything the miners would refuse is refused before one is asked (``parse_timegpt``).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import orjson

from gridmint.chain.errors import ChainError
from gridmint.gateway import metering
from gridmint.gateway.app import (
    MAX_BODY_BYTES,
    TIMEGPT_PATHS,
    Call,
    GatewayApp,
    RefusalError,
    _int,
    _json,
    _json_body,
)
from gridmint.gateway.ledger import MAX_ROW
from gridmint.gateway.routing import Candidate, Preferences
from gridmint.inference.asgi import Receive, Send, send_raw
from gridmint.inference.client import HttpError
from gridmint.inference.forecast_wire import (
    FORECAST_PATH,
    MAX_HISTORY,
    MAX_HORIZON,
    MAX_SERIES,
    MIN_HISTORY,
    PREDICTION,
    ForecastRequest,
    Series,
    check_level,
    forecast_payload,
    forecast_units,
    interval_bounds,
    parse_forecast_answer,
    parse_forecast_request,
)
from gridmint.inference.miner.app import MAX_BODY_BYTES as MINER_BODY_BYTES

ROUTES = TIMEGPT_PATHS
TIMEGPT_MODELS = ("timegpt-1", "timegpt-1-long-horizon", "timegpt-2", "timegpt-2.1")
INPUT_SIZE = 256  # history points the client sends per series without intervals
MODEL_HORIZON = 64  # the horizon beyond which the client warns that forecasts may be less accurate
MAX_MODEL_CHARS = 256  # the longest model name the miners' parser takes: what a miner's own name may add to a body
UNSUPPORTED = {"X": "exogenous variables (X_df, hist_exog_list)", "X_future": "exogenous variables (X_df)",
               "categorical_exog": "categorical exogenous variables"}


async def handle(app: GatewayApp, scope: dict[str, Any], receive: Receive, send: Send) -> int:
    """Answer one TimeGPT route; returns the HTTP status (refusals raise ``RefusalError``)."""
    path, method = scope["path"], scope["method"]
    if method == "GET" and path == "/v2/models":
        app._consumer(scope)
        await _json(send, 200, {"models": [{"name": name} for name in prediction_models(app)]})
        return 200
    if method == "GET" and path == "/model_params":
        app._consumer(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        model = query.get("model", ["timegpt-2.1"])[0]
        _candidates(app, model)
        await _json(send, 200, {"detail": {"input_size": INPUT_SIZE, "horizon": MODEL_HORIZON}})
        return 200
    if method == "POST" and path == "/v2/forecast":
        return await _forecast(app, scope, receive, send)
    raise RefusalError(404, f"no route {method} {path[:100]}", "invalid_request_error", "not_found")


def prediction_models(app: GatewayApp) -> list[str]:
    served = [model for model, modality in app.directory.models() if modality == PREDICTION]
    return [*TIMEGPT_MODELS, *served] if served else []


def _candidates(app: GatewayApp, model: str) -> list[Candidate]:
    """The prediction miners a model name reaches: TimeGPT's names reach every one."""
    if not isinstance(model, str) or len(model) > 256:
        raise RefusalError(400, "model: expected a model name", "invalid_request_error", "bad_request")
    found = [c for c in app.directory.candidates if c.modality == PREDICTION] if model in TIMEGPT_MODELS else \
        [c for c in app.directory.serving(model) if c.modality == PREDICTION]
    if not found:
        raise RefusalError(404, f"no prediction miner serves '{model[:100]}'; GET /v2/models lists what is served",
                           "invalid_request_error", "model_not_found")
    return found


def parse_timegpt(payload: dict[str, Any]) -> tuple[str, ForecastRequest, list[float]]:
    """TimeGPT's forecast body -> (model, the request for miners, the interval levels asked).

    The request is then read back with the miners' own parser, and its body measured against their body limit: a
    forecast any miner would refuse must be refused here, before it is sent, since the gateway counts a miner's
    refusal as the miner's failure (a consumer repeating one could open the breaker of every prediction miner)."""
    series = payload.get("series")
    if not isinstance(series, dict):
        raise RefusalError(400, "series: expected {y: [numbers], sizes: [counts], ...}", "invalid_request_error",
                           "bad_request")
    if payload.get("stream") not in (None, False):
        raise RefusalError(400, "stream: forecasts are answered whole; leave stream unset or false",
                           "invalid_request_error", "unsupported")
    for name, what in UNSUPPORTED.items():
        if series.get(name) is not None:
            raise RefusalError(400, f"{what} are not supported by this gateway yet", "invalid_request_error",
                               "unsupported")
    if _int(payload.get("finetune_steps", 0)) != 0 or payload.get("finetuned_model_id") is not None:
        raise RefusalError(400, "fine-tuning is not supported by this gateway: set finetune_steps=0",
                           "invalid_request_error", "unsupported")
    if payload.get("feature_contributions") or payload.get("multivariate"):
        raise RefusalError(400, "feature contributions and multivariate forecasts are not supported",
                           "invalid_request_error", "unsupported")
    horizon = payload.get("h")
    if not isinstance(horizon, int) or isinstance(horizon, bool) or not 1 <= horizon <= MAX_HORIZON:
        raise RefusalError(400, f"expected {{series: {{y, sizes}}, h: 1..{MAX_HORIZON}, ...}}",
                           "invalid_request_error", "bad_request")
    sizes, values = series.get("sizes"), series.get("y")
    if not isinstance(sizes, list) or not 1 <= len(sizes) <= MAX_SERIES or not all(
            isinstance(s, int) and not isinstance(s, bool) and MIN_HISTORY <= s <= MAX_HISTORY for s in sizes):
        raise RefusalError(400, f"series.sizes: expected 1 to {MAX_SERIES} series of {MIN_HISTORY} to {MAX_HISTORY} "
                           "values each", "invalid_request_error", "bad_request")
    try:  # no dtype: numpy would read "1.5" and true as numbers; text, null or nesting make another dtype here
        flat = np.asarray(values)
    except (TypeError, ValueError):
        flat = np.asarray([], dtype=object)
    if flat.ndim != 1 or flat.dtype.kind not in "iuf" or len(flat) != sum(sizes) or \
            not np.isfinite(flat.astype(np.float64)).all():
        raise RefusalError(400, "series.y: expected the finite values of every series, sum(sizes) of them",
                           "invalid_request_error", "bad_request")
    flat = flat.astype(np.float64)
    try:
        levels = check_level(payload.get("level") or [])
    except ChainError as error:
        raise RefusalError(400, error.message, "invalid_request_error", "bad_request") from None
    bounds = sorted({q for level in levels for q in interval_bounds(level)})
    starts = np.cumsum([0, *sizes])
    request = ForecastRequest(str(payload.get("model", "timegpt-2.1")), horizon,
                              tuple(Series(str(i), flat[starts[i]:starts[i + 1]]) for i in range(len(sizes))),
                              0, tuple(bounds))
    _check_as_miners_do(request)
    return request.model, request, levels


def _check_as_miners_do(request: ForecastRequest) -> None:
    """Refuse what the miners' parser or body limit would: the values' magnitude, the answer's size, the body's."""
    forwarded = forecast_payload(ForecastRequest("m" * MAX_MODEL_CHARS, request.horizon, request.series,
                                                 request.paths, request.quantiles))  # the longest name a miner has
    try:
        parse_forecast_request(forwarded)
    except ChainError as error:
        raise RefusalError(400, error.message, "invalid_request_error", "bad_request") from None
    size = len(orjson.dumps(forwarded))
    if size > MINER_BODY_BYTES:
        raise RefusalError(413, f"the series make a {size}-byte request to the miners, who take at most "
                           f"{MINER_BODY_BYTES}: send fewer or shorter series per request (num_partitions)",
                           "invalid_request_error", "body_too_large")


async def _forecast(app: GatewayApp, scope: dict[str, Any], receive: Receive, send: Send) -> int:
    consumer = app._consumer(scope)
    if any(name == b"content-encoding" and value.strip().lower() != b"identity" for name, value in scope["headers"]):
        raise RefusalError(400, "compressed bodies are not supported: send fewer series per request "
                           "(num_partitions)", "invalid_request_error", "unsupported")
    model, request, levels = parse_timegpt(await _json_body(scope, receive, MAX_BODY_BYTES))
    serving = _candidates(app, model)
    line = await app.credit.line(consumer)
    if line is None or app.credit.room(consumer) <= 0:
        raise RefusalError(402, "your credit line with this gateway is spent, expired or closing (or there is none); "
                           "open or top it up with `gridmint credit`", "insufficient_quota", "insufficient_credit")
    ordered = app.directory.order(serving, Preferences(), line.max_price_per_1k)
    if not ordered:
        raise RefusalError(404, f"no prediction miner at or below your line's maximum price "
                           f"({line.max_price_per_1k} grains per 1k units)", "invalid_request_error",
                           "no_matching_miner")
    units = forecast_units(request)
    call = Call(consumer, line, secrets.token_hex(12), units, 0)
    call.worst = metering.cost(units, max(c.price_per_1k for c in ordered))
    reserved = None if call.worst > MAX_ROW else app.credit.reserve(consumer, call.worst, line.fee_bps)
    if reserved is None:
        raise RefusalError(402, f"this forecast may cost up to {call.worst} grains with the fee on top; your line "
                           "cannot pay that now", "insufficient_quota", "insufficient_credit")
    call.reserved = reserved
    try:
        for attempt, miner in enumerate(ordered):
            own = model if model in miner.models or not miner.models else miner.models[0]  # a TimeGPT name: its own
            asked = ForecastRequest(own, request.horizon, request.series, 0, request.quantiles)
            try:
                answer = await app.miners.call(miner.url, FORECAST_PATH, miner.hotkey, forecast_payload(asked),
                                               app.timeout_s)
                if answer.status != 200 or not answer.signed:
                    app._failed(miner, attempt, f"answered {answer.status}" + ("" if answer.signed else " unsigned"))
                    continue
                forecasts = parse_forecast_answer(asked, answer.json())
            except (HttpError, ChainError, ValueError) as error:
                app._failed(miner, attempt, str(error))
                continue
            app.directory.health_of(miner.hotkey).success(answer.latency_s)
            grains = app._meter(call, miner, units, 0)
            intervals = None
            if levels:
                intervals = {}
                for level in sorted(levels):
                    low, high = interval_bounds(level)
                    label = f"{level:.15g}"  # :g kept 6 digits: 99.99991 and 99.99992 were both "100", one lost
                    intervals[f"lo-{label}"] = np.concatenate([f.quantiles[low] for f in forecasts]).tolist()
                    intervals[f"hi-{label}"] = np.concatenate([f.quantiles[high] for f in forecasts]).tolist()
            body = {"mean": np.concatenate([f.mean for f in forecasts]).tolist(), "intervals": intervals,
                    "weights_x": None, "feature_contributions": None}
            await send_raw(send, 200, orjson.dumps(body), b"application/json", [
                (b"x-gridmint-miner", miner.hotkey.encode()), (b"x-gridmint-cost", b"%d" % grains),
                (b"x-gridmint-units", b"%d" % units), (b"x-gridmint-request", call.request.encode())])
            return 200
        raise RefusalError(503, f"none of the {len(ordered)} prediction miners answered; try again shortly",
                           "server_error", "no_miner_available")
    finally:
        app.credit.release(consumer, call.reserved)
