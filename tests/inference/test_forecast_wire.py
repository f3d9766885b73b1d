"""/v1/forecast requests and answers: every bound refused with inference/bad_request, answers held to the shape
their request asked for."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import orjson
import pytest

from gridmint.chain.errors import ChainError
from gridmint.inference.forecast_wire import (
    MAX_ABS_VALUE,
    MAX_ANSWER_VALUES,
    MAX_PATHS,
    MAX_QUANTILES,
    MAX_SERIES,
    MIN_METERED_HISTORY,
    Forecast,
    answer_bytes_bound,
    check_level,
    forecast_answer,
    forecast_payload,
    forecast_units,
    interval_bounds,
    parse_forecast_answer,
    parse_forecast_request,
)
from gridmint.inference.http import MAX_ANSWER_BYTES

GOOD: dict[str, Any] = {"model": "naive", "horizon": 3, "paths": 2, "quantiles": [0.9, 0.1],
                        "series": [{"id": "a", "y": [1, 2.5, 3]}, {"id": "b", "y": [4.0, 5.0]}]}


def test_a_request_round_trips() -> None:
    request = parse_forecast_request(GOOD)
    assert request.quantiles == (0.1, 0.9) and [s.id for s in request.series] == ["a", "b"]
    assert forecast_payload(parse_forecast_request(forecast_payload(request))) == forecast_payload(request)
    # history points (at least MIN_METERED_HISTORY a series), then the numbers answered
    assert forecast_units(request) == 2 * MIN_METERED_HISTORY + 2 * 3 * (1 + 2 + 2)
    long = parse_forecast_request({**GOOD, "series": [{"id": "a", "y": [1.0] * (MIN_METERED_HISTORY + 5)}]})
    assert forecast_units(long) == MIN_METERED_HISTORY + 5 + 3 * (1 + 2 + 2)


def test_many_short_series_pay_for_a_fit_each() -> None:
    """Red team: 64 series of 8 points and one step were metered 576 numbers, for 64 model fits (~2.9 s of CPU on
    statsmodels, 19× a typical request's CPU per number); each series now pays at least MIN_METERED_HISTORY."""
    request = parse_forecast_request({"model": "naive", "horizon": 1,
                                      "series": [{"id": str(i), "y": [1.0] * 8} for i in range(MAX_SERIES)]})
    assert forecast_units(request) == MAX_SERIES * (MIN_METERED_HISTORY + 1)


@pytest.mark.parametrize(("change", "words"), [
    ({"model": ""}, "model"),
    ({"horizon": 0}, "horizon"),
    ({"horizon": True}, "horizon"),
    ({"paths": 1_001}, "paths"),
    ({"quantiles": [0.0]}, "quantiles"),
    ({"quantiles": ["0.5"]}, "quantiles"),
    ({"series": []}, "series"),
    ({"series": [{"id": "a", "y": [1]}]}, "series[0].y"),
    ({"series": [{"id": "a", "y": [1, float("nan")]}]}, "finite"),
    ({"series": [{"id": "a", "y": [1, "2"]}]}, "numbers"),
    ({"series": [{"id": "a", "y": [1, 2]}, {"id": "a", "y": [1, 2]}]}, "own id"),
    ({"series": [{"id": str(i), "y": [1, 2]} for i in range(MAX_SERIES + 1)]}, "series"),
    ({"horizon": 1_000, "paths": 1_000, "series": [{"id": str(i), "y": [1, 2]} for i in range(3)]}, "values"),
])
def test_bad_requests_are_refused_with_the_field_named(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ChainError) as refused:
        parse_forecast_request({**GOOD, **change})
    assert refused.value.kind.name == "bad_request" and words in refused.value.message
    assert MAX_ANSWER_VALUES < 3 * 1_000 * 1_001


def answer_for(request: Any) -> dict[str, Any]:
    forecasts = [Forecast(s.id, np.zeros(3), {q: np.zeros(3) for q in request.quantiles}, np.zeros((2, 3)))
                 for s in request.series]
    return forecast_answer(request.model, forecasts)


def test_an_answer_is_held_to_the_shape_asked() -> None:
    request = parse_forecast_request(GOOD)
    good = answer_for(request)
    parsed = parse_forecast_answer(request, good)
    assert parsed[1].paths is not None and parsed[1].paths.shape == (2, 3) and set(parsed[0].quantiles) == {0.1, 0.9}
    bad_cases = [
        {"forecasts": good["forecasts"][:1]},
        {"forecasts": [{**good["forecasts"][0], "id": "z"}, good["forecasts"][1]]},
        {"forecasts": [{**good["forecasts"][0], "paths": [[0, 0, 0]]}, good["forecasts"][1]]},
        {"forecasts": [{**good["forecasts"][0], "paths": [[0, 0, 0], [0, 0]]}, good["forecasts"][1]]},
        {"forecasts": [{**good["forecasts"][0], "paths": [[0, 0, None], [0, 0, 0]]}, good["forecasts"][1]]},
        {"forecasts": [{**good["forecasts"][0], "mean": [0, 0, 1e400]}, good["forecasts"][1]]},
        {"forecasts": [{**good["forecasts"][0], "quantiles": {}}, good["forecasts"][1]]},
        {"forecasts": [{**good["forecasts"][0], "mean": [0, 0, 2**80]}, good["forecasts"][1]]},
        [],
    ]
    for bad in bad_cases:
        with pytest.raises(ChainError):
            parse_forecast_answer(request, bad)


def test_the_largest_answer_a_request_may_ask_for_fits_what_callers_read() -> None:
    """Red team: at 2,000,000 values an answer was ~40 MB of JSON; gateways and validators read 16 MiB at most, so
    a miner asked for one computed it in full and was counted failed. The worst case here is every number the
    longest float64 there is, 64 ids of escaped control characters and the most quantile keys and path rows."""
    quantiles = [round(0.01 + i * 0.0301234567891234, 16) for i in range(MAX_QUANTILES)]
    paths = MAX_PATHS
    horizon = MAX_ANSWER_VALUES // (MAX_SERIES * (1 + paths + len(quantiles)))
    body = {**GOOD, "horizon": horizon, "paths": paths, "quantiles": quantiles,
            "series": [{"id": chr(1) * 64 + f"{i:064d}", "y": [1, 2]} for i in range(MAX_SERIES)]}
    request = parse_forecast_request(body)
    worst = -2.2250738585072014e-308
    forecasts = [Forecast(s.id, np.full(horizon, worst), {q: np.full(horizon, worst) for q in request.quantiles},
                          np.full((paths, horizon), worst)) for s in request.series]
    encoded = orjson.dumps(forecast_answer(request.model, forecasts))
    assert MAX_SERIES * horizon * (1 + paths + len(quantiles)) > 0.95 * MAX_ANSWER_VALUES  # the bound is reached
    assert len(encoded) <= answer_bytes_bound(request) <= MAX_ANSWER_BYTES
    with pytest.raises(ChainError, match="values"):
        parse_forecast_request({**body, "horizon": horizon + 1})


def test_history_values_past_the_magnitude_bound_are_refused() -> None:
    """Red team: a history of ±1e200 made both backends answer NaN (null in JSON), which every caller drops."""
    parse_forecast_request({**GOOD, "series": [{"id": "a", "y": [MAX_ABS_VALUE, -MAX_ABS_VALUE]}]})
    with pytest.raises(ChainError, match="magnitude"):
        parse_forecast_request({**GOOD, "series": [{"id": "a", "y": [1.0, 1e200]}]})


def test_a_miner_never_signs_a_forecast_that_is_not_finite() -> None:
    request = parse_forecast_request(GOOD)
    good = [Forecast(s.id, np.zeros(3), {q: np.zeros(3) for q in request.quantiles}, np.zeros((2, 3)))
            for s in request.series]
    for broken in ({"mean": np.array([0.0, np.nan, 0.0])}, {"paths": np.full((2, 3), np.inf)},
                   {"quantiles": {0.1: np.zeros(3), 0.9: np.array([0.0, 0.0, -np.inf])}}):
        forecasts = [dataclasses.replace(good[0], **broken), good[1]]
        with pytest.raises(ChainError, match="not finite") as refused:
            forecast_answer(request.model, forecasts)
        assert refused.value.kind.name == "bad_request"


def test_levels_whose_bounds_round_to_0_or_1_are_refused() -> None:
    """Red team: 99.99999999999 passed the gateway and became the quantile 1.0, which every miner refuses."""
    assert check_level([80, 99.9999999]) == [80.0, 99.9999999]
    assert interval_bounds(99.9999999)[0] > 0 and interval_bounds(99.9999999)[1] < 1
    for bad in ([99.99999999999], [100], [0], [float("nan")], [True], ["80"], [80] * (MAX_QUANTILES // 2 + 1)):
        with pytest.raises(ChainError, match="level"):
            check_level(bad)
