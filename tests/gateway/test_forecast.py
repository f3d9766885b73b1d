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
from gridmint.gateway.routing import Candidate, Directory
from gridmint.inference.backends.forecast import NaiveBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.forecast_wire import PREDICTION
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


@pytest.fixture
def gateway(books: GatewayBooks, serve: Callable[..., str]) -> tuple[str, str, Ledger, dict[str, str]]:
    urls = {"naive": serve(MinerApp(key("naive"), NaiveBackend(), CallerPolicy(allow="any"))),
            "unsigned": serve(unsigned_app)}
    hotkeys = {name: format_address(key(name).address) for name in urls}
    directory = Directory([
        Candidate(3, 0, hotkeys["unsigned"], urls["unsigned"], ("naive",), PRICE, ONE, PREDICTION),
        Candidate(3, 1, hotkeys["naive"], urls["naive"], ("naive",), PRICE, ONE // 2, PREDICTION)])
    credit = CreditBook(LineStandIn(), books.address, books.ledger)  # type: ignore[arg-type]
    allow = [url.removeprefix("http://") for url in urls.values()]
    app = GatewayApp(books.address, MinerClient(key("gateway"), timeout_s=5, allow=allow), directory, books.keys,
                     books.ledger, credit, RateLimiter(1_000, 1_000), timeout_s=5, idle_s=5)
    return serve(app), books.issue_api_key(), books.ledger, hotkeys


def test_a_timegpt_forecast_is_answered_in_its_shape_and_metered_per_series_and_step(
        gateway: tuple[str, str, Ledger, dict[str, str]]) -> None:
    url, api_key, ledger, hotkeys = gateway
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
    units = 30 + 2 * 6 * (1 + 4)  # 30 points of history; per series and step the mean and four interval bounds
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
        gateway: tuple[str, str, Ledger, dict[str, str]], change: dict[str, Any], status: int, code: str) -> None:
    url, api_key, ledger, _ = gateway
    answer = httpx.post(f"{url}/v2/forecast", json={**BODY, **change}, headers={"authorization": f"Bearer {api_key}"},
                        timeout=10)
    assert answer.status_code == status and answer.json()["error"]["code"] == code, answer.text
    assert ledger.db.execute("SELECT COUNT(*) FROM metered").fetchone()[0] == 0


def test_no_key_no_forecast(gateway: tuple[str, str, Ledger, dict[str, str]]) -> None:
    url, _, ledger, _ = gateway
    assert httpx.post(f"{url}/v2/forecast", json=BODY, timeout=10).status_code == 401
    assert httpx.get(f"{url}/v2/models", timeout=10).status_code == 401
    assert ledger.db.execute("SELECT COUNT(*) FROM metered").fetchone()[0] == 0
