"""`gridmint up` lets its gateway and validators reach exactly its own miners' loopback ports, never a range: the
node's RPC port, the gateway's and the others stay out of reach of a miner that announces them."""

from __future__ import annotations

from gridmint.cli.up import _allow_miners, _ports, miner_plan, netuids_of, served_models


def test_up_allows_exactly_its_own_miners_per_subnet_and_all_of_them_for_the_gateway() -> None:
    plan = miner_plan(2)
    ports = _ports(27_600, plan)
    everyone = _allow_miners(ports, plan)
    assert everyone[0::2] == ["--allow-endpoint"] * len(plan)
    assert everyone[1::2] == [f"127.0.0.1:{ports[name]}" for name, _, _ in plan]
    for other in ("node", "gateway", "provider", "explorer"):
        assert f"127.0.0.1:{ports[other]}" not in everyone
    text_subnet = _allow_miners(ports, plan, 1)[1::2]
    assert text_subnet == [f"127.0.0.1:{ports[name]}" for name, netuid, _ in plan if netuid == 1]
    assert f"127.0.0.1:{ports['embed']}" not in text_subnet


def test_up_runs_a_prediction_subnet_with_a_forecaster_and_the_naive_walk() -> None:
    plan = miner_plan(1)
    assert netuids_of(plan) == [1, 2, 3]
    assert [name for name, netuid, _ in plan if netuid == 3] == ["forecast", "naive"]
    assert {"statsmodels-arima", "naive"} <= set(served_models(plan))
    ports = _ports(27_600, plan)
    assert _allow_miners(ports, plan, 3)[1::2] == [f"127.0.0.1:{ports['forecast']}", f"127.0.0.1:{ports['naive']}"]
    without = miner_plan(1, forecaster=False)  # statsmodels not installed: the naive walk alone
    assert [name for name, netuid, _ in without if netuid == 3] == ["naive"]
    assert "statsmodels-arima" not in served_models(without)
    old = [row for row in plan if row[1] != 3]  # a network made before subnet 3: resumed as it was
    assert netuids_of(old) == [1, 2] and "naive" not in served_models(old)
