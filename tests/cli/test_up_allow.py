"""`gridmint up` lets its gateway and validators reach exactly its own miners' loopback ports, never a range: the
node's RPC port, the gateway's and the others stay out of reach of a miner that announces them."""

from __future__ import annotations

from gridmint.cli.up import _allow_miners, _ports, miner_plan


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
