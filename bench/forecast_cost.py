"""What a forecast costs a miner per number it is paid for: CPU seconds per metered unit, for the shapes a consumer
may send, against a typical TimeGPT request (the baseline) measured in the same run.

    .venv/bin/python bench/forecast_cost.py [--backend statsmodels|naive] [--repeat 3]

Shapes (``forecast_wire.forecast_units`` meters each; ``raw`` is the count without the per-series floor):
- **typical**: one series of 256 points (the ``input_size`` the gateway gives TimeGPT clients), 12 steps, two
  interval levels (four quantiles): the baseline;
- **validator**: a prediction validator's prompt, 4 series of 64 points, 12 steps, 100 paths;
- **short-series**: 64 series of 8 points, 1 step, nothing else: the cheapest body that makes the statsmodels
  backend fit 3 ARIMA orders 64 times;
- **long-horizon**: 64 series of 2 points, 1,000 steps, no paths: the backends still simulate 200 paths a series.
Only a run whose every forecast is finite and of the shape asked counts; the median of ``--repeat`` runs is kept.
The last line is JSON with each shape's CPU microseconds per metered unit and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from gridmint.inference.backends.forecast import NaiveBackend
from gridmint.inference.forecast_wire import ForecastRequest, Series, forecast_units


def shapes(model: str, rng: np.random.Generator) -> dict[str, ForecastRequest]:
    def series(count: int, points: int) -> tuple[Series, ...]:
        return tuple(Series(str(i), 100 + np.cumsum(rng.normal(size=points))) for i in range(count))

    return {"typical": ForecastRequest(model, 12, series(1, 256), 0, (0.05, 0.1, 0.9, 0.95)),
            "validator": ForecastRequest(model, 12, series(4, 64), 100),
            "short-series": ForecastRequest(model, 1, series(64, 8)),
            "long-horizon": ForecastRequest(model, 1_000, series(64, 2))}


def raw_units(request: ForecastRequest) -> int:
    return sum(len(s.y) for s in request.series) + len(request.series) * request.horizon * (
        1 + request.paths + len(request.quantiles))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("statsmodels", "naive"), default="statsmodels")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.backend == "statsmodels":
        from gridmint.inference.backends.forecast_statsmodels import StatsmodelsBackend

        backend: NaiveBackend | StatsmodelsBackend = StatsmodelsBackend()
    else:
        backend = NaiveBackend()
    results: dict[str, dict[str, float]] = {}
    for name, request in shapes(backend.model, np.random.default_rng(7)).items():
        seconds = []
        for _ in range(args.repeat):
            started = time.process_time()
            forecasts = backend.forecast(request)
            spent = time.process_time() - started
            if len(forecasts) == len(request.series) and all(
                    f.mean.shape == (request.horizon,) and np.isfinite(f.mean).all() for f in forecasts):
                seconds.append(spent)
        if not seconds:
            print(f"{name}: no run succeeded")
            continue
        cpu = statistics.median(seconds)
        units, raw = forecast_units(request), raw_units(request)
        results[name] = {"cpu_ms": round(cpu * 1e3, 1), "units": units, "raw_units": raw,
                         "us_per_unit": round(cpu * 1e6 / units, 2), "us_per_raw_unit": round(cpu * 1e6 / raw, 2)}
        print(f"{name:13s} {cpu * 1e3:8.1f} ms CPU  {units:7d} units ({raw:7d} without the floor)  "
              f"{cpu * 1e6 / units:8.2f} µs/unit ({cpu * 1e6 / raw:8.2f} without)")
    base = results.get("typical")
    if base:
        for row in results.values():
            row["ratio_to_typical"] = round(row["us_per_unit"] / base["us_per_unit"], 2)
            row["raw_ratio_to_typical"] = round(row["us_per_raw_unit"] / base["us_per_raw_unit"], 2)
    print(json.dumps({"backend": args.backend, **results}))


if __name__ == "__main__":
    main()
