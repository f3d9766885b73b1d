"""/v1/forecast requests and answers: every bound refused with inference/bad_request, answers held to the shape
their request asked for."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridmint.chain.errors import ChainError
from gridmint.inference.forecast_wire import (
    MAX_ANSWER_VALUES,
    MAX_SERIES,
    Forecast,
    forecast_answer,
    forecast_payload,
    forecast_units,
    parse_forecast_answer,
    parse_forecast_request,
)

GOOD: dict[str, Any] = {"model": "naive", "horizon": 3, "paths": 2, "quantiles": [0.9, 0.1],
                        "series": [{"id": "a", "y": [1, 2.5, 3]}, {"id": "b", "y": [4.0, 5.0]}]}


def test_a_request_round_trips() -> None:
    request = parse_forecast_request(GOOD)
    assert request.quantiles == (0.1, 0.9) and [s.id for s in request.series] == ["a", "b"]
    assert forecast_payload(parse_forecast_request(forecast_payload(request))) == forecast_payload(request)
    assert forecast_units(request) == (3 + 2) + 2 * 3 * (1 + 2 + 2)  # history points, then numbers answered


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
