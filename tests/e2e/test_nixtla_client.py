"""TimeGPT's own client, the `nixtla` package, unchanged but for base_url and api_key, through the gateway to a real
forecaster on a prediction subnet (`gridmint miner run --backend statsmodels`); then the money: the forecast was
metered per series × horizon, settled on chain from the miner's signed receipt, and the consumer's line paid
exactly the metered amount and the gateway's fee, to the grain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridmint.chain.credit import compute_fee
from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from gridmint.gateway import metering
from gridmint.inference.forecast_wire import MIN_METERED_HISTORY
from tests.support.gateway_network import ledger_rows, start_gateway, start_miner, wait_for_models, wait_until_settled
from tests.support.live_subnet import live_subnet

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

FEE_BPS = 100
PRICE_MINT = "0.002"  # per 1k series-steps
H = 12


def test_the_nixtla_client_forecasts_through_the_gateway_and_the_line_pays_what_was_metered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nixtla = pytest.importorskip("nixtla")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("statsmodels")
    names = ("owner", "val", "forecaster", "gw", "consumer")
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=50_000, modality="prediction", permit=False) as live:
        gateway = start_gateway(tmp_path, "gw", "--fee-bps", str(FEE_BPS), miners=("forecaster",))
        miner = start_miner(tmp_path, "forecaster", 1, "statsmodels", PRICE_MINT)
        try:
            consumer = open_wallet("consumer", live.wallets).address
            live.run("credit", "open", gateway.url, "50", "--blocks", "100000", "--wallet", "consumer")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            wait_for_models(gateway, "statsmodels-arima", "subnet-1")

            rng = np.random.default_rng(5)
            days = pd.date_range("2026-01-01", periods=60, freq="D")
            df = pd.concat([pd.DataFrame({"unique_id": name, "ds": days,
                                          "y": 100 + np.cumsum(rng.normal(0, 1, len(days)))})
                            for name in ("north", "south")], ignore_index=True)
            client = nixtla.NixtlaClient(base_url=gateway.url, api_key=api_key, max_retries=1)
            assert "timegpt-2.1" in client.list_models()
            forecast = client.forecast(df, h=H, level=[80, 90])

            assert set(forecast.columns) == {"unique_id", "ds", "TimeGPT", "TimeGPT-lo-80", "TimeGPT-hi-80",
                                             "TimeGPT-lo-90", "TimeGPT-hi-90"}
            assert len(forecast) == 2 * H and set(forecast["unique_id"]) == {"north", "south"}
            assert forecast["ds"].min() == days[-1] + pd.Timedelta(days=1)
            assert (forecast["TimeGPT-lo-90"] <= forecast["TimeGPT-lo-80"]).all()
            assert (forecast["TimeGPT-lo-80"] <= forecast["TimeGPT"]).all()
            assert (forecast["TimeGPT"] <= forecast["TimeGPT-hi-80"]).all()
            assert (forecast["TimeGPT-hi-80"] <= forecast["TimeGPT-hi-90"]).all()

            # Money: one row metered — 2 × 60 points of history (metered as 256 each), and per series and step the
            # mean and four interval bounds — at the miner's price; settled; the line paid it and the fee.
            wait_until_settled(tmp_path, 1, gateway)
            rows = ledger_rows(tmp_path)
            assert len(rows) == 1
            row_consumer, row_miner, grains, batch, _ = rows[0]
            price = int(float(PRICE_MINT) * 10**9)
            assert row_consumer == consumer and batch is not None
            history = 2 * max(len(days), MIN_METERED_HISTORY)  # each series pays for at least 256 points
            assert grains == metering.cost(history + 2 * H * (1 + 4), price)
            assert row_miner == open_wallet("forecaster", live.wallets).hotkey_address("default")
            with ChainClient(live.node.url) as chain:
                gateway_address = open_wallet("gw", live.wallets).address
                line = chain.query(f"/credit/line/{consumer}/{gateway_address}")
                assert line["spent"] == grains + compute_fee(grains, FEE_BPS) > 0
                assert line["balance"] == 50 * 10**9 - line["spent"]
        finally:
            for process in (miner, gateway):
                process.stop()
