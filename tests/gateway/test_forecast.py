"""TimeGPT's routes on the gateway (gateway/forecast.py), on loopback sockets against real forecast miners: the
nixtla client's body shape in, its answer shape out, metered per series × horizon, failed over from an unsigned
answer, and every unsupported or malformed body refused with a code before any miner is asked. The credit line is
the stand-in of tests/gateway/test_app.py; tests/e2e/test_nixtla_client.py runs the real client against a chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from gridmint.chain.crypto import format_address
from gridmint.gateway import metering
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.credit import CreditBook
from gridmint.gateway.ledger import Ledger
from gridmint.gateway.routing import BREAKER_FAILURES, Candidate, Directory
from gridmint.inference.asgi import CoalescingHttpToolsProtocol
from gridmint.inference.backends.forecast import NaiveBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.forecast_wire import MAX_HORIZON, MAX_SERIES, MIN_METERED_HISTORY, PREDICTION
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from tests.support.chain import key
from tests.support.gateway_app import ONE, GatewayBooks, LineStandIn, unsigned_app

PRICE = 900_000  # grains per 1k series-steps (the line pays at most 1,000,000)
BODY: dict[str, Any] = {"series": {"y": [float(v) for v in range(20)] + [5.0] * 10, "sizes": [20, 10], "X": None,
                                   "X_future": None},
                        "model": "timegpt-2.1", "h": 6, "freq": "D", "clean_ex_first": True, "level": [80, 90],
                        "finetune_steps": 0, "finetune_depth": 1, "finetune_loss": "default",
                        "finetuned_model_id": None, "feature_contributions": False, "multivariate": False}
Gateway = tuple[str, str, Ledger, dict[str, str], Directory]


@pytest.fixture
def gateway(books: GatewayBooks, serve: Callable[..., str]) -> Gateway:
    urls = {"naive": serve(MinerApp(key("naive"), NaiveBackend(), CallerPolicy(allow="any"))),
            "unsigned": serve(unsigned_app)}
    hotkeys = {name: format_address(key(name).address) for name in urls}
    directory = Directory([
        Candidate(3, 0, hotkeys["unsigned"], urls["unsigned"], ("naive",), PRICE, ONE, PREDICTION),
        Candidate(3, 1, hotkeys["naive"], urls["naive"], ("naive",), PRICE, ONE // 2, PREDICTION)])
    chain = LineStandIn()
    chain.line["balance"] = 10**12  # room for the largest forecasts, so that only the bounds refuse them
    credit = CreditBook(chain, books.address, books.ledger)  # type: ignore[arg-type]
    allow = [url.removeprefix("http://") for url in urls.values()]
    app = GatewayApp(books.address, MinerClient(key("gateway"), timeout_s=5, allow=allow), directory, books.keys,
                     books.ledger, credit, RateLimiter(1_000, 1_000), timeout_s=5, idle_s=5)
    # as serve_gateway runs it: the ledger's rows are committed before the answer leaves, which the tests read
    return serve(app, http=CoalescingHttpToolsProtocol), books.issue_api_key(), books.ledger, hotkeys, directory


def test_a_timegpt_forecast_is_answered_in_its_shape_and_metered_per_series_and_step(
        gateway: Gateway) -> None:
    url, api_key, ledger, hotkeys, _ = gateway
    auth = {"authorization": f"Bearer {api_key}"}
    models = httpx.get(f"{url}/v2/models", headers=auth).json()["models"]
    assert {"name": "timegpt-2.1"} in models and {"name": "naive"} in models
    params = httpx.get(f"{url}/model_params", params={"model": "timegpt-2.1", "freq": "D"}, headers=auth).json()
    assert set(params["detail"]) == {"input_size", "horizon"}
    answer = httpx.post(f"{url}/v2/forecast", json=BODY, headers=auth, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-gridmint-miner"] == hotkeys["naive"]  # the unsigned one, ranked first, failed over
    result = answer.json()
    assert len(result["mean"]) == 12 and result["mean"][:6] == [19.0] * 6 and result["mean"][6:] == [5.0] * 6
    assert sorted(result["intervals"]) == ["hi-80", "hi-90", "lo-80", "lo-90"]
    lo90, lo80, hi80, hi90 = (np.array(result["intervals"][k]) for k in ("lo-90", "lo-80", "hi-80", "hi-90"))
    assert np.all(lo90 <= lo80) and np.all(lo80 <= hi80) and np.all(hi80 <= hi90)
    assert np.all(lo90[6:] == 5.0)  # a flat history: the naive walk has no spread
    # 30 points of history, metered as MIN_METERED_HISTORY a series; per series and step the mean and four bounds
    units = 2 * MIN_METERED_HISTORY + 2 * 6 * (1 + 4)
    assert int(answer.headers["x-gridmint-units"]) == units
    rows = ledger.db.execute("SELECT miner, tokens, grains FROM metered").fetchall()
    assert rows == [(hotkeys["naive"], units, metering.cost(units, PRICE))]
    assert int(answer.headers["x-gridmint-cost"]) == metering.cost(units, PRICE)


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"series": {**BODY["series"], "X": [[1.0]]}}, 400, "unsupported"),
    ({"finetune_steps": 5}, 400, "unsupported"),
    ({"multivariate": True}, 400, "unsupported"),
    ({"series": {**BODY["series"], "sizes": [20, 11]}}, 400, "bad_request"),
    ({"series": {**BODY["series"], "sizes": [1, 29]}}, 400, "bad_request"),
    ({"series": {**BODY["series"], "y": ["x"] * 30}}, 400, "bad_request"),
    ({"h": 0}, 400, "bad_request"),
    ({"level": [100]}, 400, "bad_request"),
    ({"model": "gpt-4"}, 404, "model_not_found"),
])
def test_bad_forecasts_are_refused_with_a_code_and_nothing_metered(
        gateway: Gateway, change: dict[str, Any], status: int, code: str) -> None:
    url, api_key, ledger, _, _ = gateway
    answer = httpx.post(f"{url}/v2/forecast", json={**BODY, **change}, headers={"authorization": f"Bearer {api_key}"},
                        timeout=10)
    assert answer.status_code == status and answer.json()["error"]["code"] == code, answer.text
    assert ledger.db.execute("SELECT COUNT(*) FROM metered").fetchone()[0] == 0


def test_no_key_no_forecast(gateway: Gateway) -> None:
    url, _, ledger, _, _ = gateway
    assert httpx.post(f"{url}/v2/forecast", json=BODY, timeout=10).status_code == 401
    assert httpx.get(f"{url}/v2/models", timeout=10).status_code == 401
    assert ledger.db.execute("SELECT COUNT(*) FROM metered").fetchone()[0] == 0


MANY = {"series": {"y": [1.0, 2.0] * MAX_SERIES, "sizes": [2] * MAX_SERIES}, "h": MAX_HORIZON}


@pytest.mark.parametrize(("change", "status", "code"), [
    # the quantile 1.0, which every miner refuses
    ({"level": [99.99999999999]}, 400, "bad_request"),
    # 64 × 1,000 × 33 numbers: over what a miner answers
    ({**MANY, "level": [5 * i for i in range(1, 17)]}, 400, "bad_request"),
    # 64 × 1,000 × 17 numbers: ~20 MB of answer, computed in full, then dropped by the gateway as oversize
    ({**MANY, "level": [10 * i for i in range(1, 9)]}, 400, "bad_request"),
    # values whose squares overflow: every miner answered NaN (null)
    ({"series": {**BODY["series"], "y": [1e200, -1e200] * 15}}, 400, "bad_request"),
    # numbers as text and booleans, which numpy read as numbers
    ({"series": {**BODY["series"], "y": ["1.5"] * 30}}, 400, "bad_request"),
    ({"series": {**BODY["series"], "y": [True, False] * 15}}, 400, "bad_request"),
    # a series that is not an object: an AttributeError, a 500
    ({"series": [1, 2, 3]}, 400, "bad_request"),
    ({"series": "y"}, 400, "bad_request"),
    # a stream asked of an endpoint that answers whole
    ({"stream": True}, 400, "unsupported"),
    # 288,000 points of "1, " (~860 KB) that become ~1.15 MB of "1.0," for the miners, who take 1 MiB
    ({"series": {"y": [1] * 4_500 * MAX_SERIES, "sizes": [4_500] * MAX_SERIES}, "level": []}, 413,
     "body_too_large"),
])
def test_forecasts_no_miner_would_take_are_refused_before_any_miner_is_asked(
        gateway: Gateway, change: dict[str, Any], status: int, code: str) -> None:
    """Red team: each body passed the gateway and was refused (or answered unreadably) by every miner, which the
    gateway counts as each miner's failure: a consumer repeating it opened every prediction miner's breaker, for
    free. Now each is refused first, nothing is metered and no miner's health moves; a good forecast still goes."""
    url, api_key, ledger, hotkeys, directory = gateway
    auth = {"authorization": f"Bearer {api_key}"}
    for _ in range(BREAKER_FAILURES):
        answer = httpx.post(f"{url}/v2/forecast", json={**BODY, **change}, headers=auth, timeout=30)
        assert answer.status_code == status and answer.json()["error"]["code"] == code, answer.text
    assert ledger.db.execute("SELECT COUNT(*) FROM metered").fetchone()[0] == 0
    for hotkey in hotkeys.values():
        health = directory.health_of(hotkey)
        assert (health.failures_in_row, health.served, health.error_rate) == (0, 0, 0.0)
    answer = httpx.post(f"{url}/v2/forecast", json=BODY, headers=auth, timeout=30)
    assert answer.status_code == 200 and answer.headers["x-gridmint-miner"] == hotkeys["naive"], answer.text


def test_close_levels_keep_intervals_of_their_own(gateway: Gateway) -> None:
    """Red team: interval keys kept 6 digits of the level, so 99.99991 and 99.99992 were both "lo-100"/"hi-100":
    one interval silently replaced the other, and "lo-99.9999999" (what the client looks up) was never there."""
    url, api_key, _, _, _ = gateway
    answer = httpx.post(f"{url}/v2/forecast", json={**BODY, "level": [80, 99.99991, 99.99992, 99.9999999]},
                        headers={"authorization": f"Bearer {api_key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["intervals"]) == sorted(f"{side}-{level}" for side in ("lo", "hi")
                                                        for level in ("80", "99.99991", "99.99992", "99.9999999"))
