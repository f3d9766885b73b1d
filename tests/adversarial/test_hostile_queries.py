"""Queries a stranger can send any node for free: out-of-range numbers in every query path, hostile heights and
data, through CometBFT's RPC to the app. Each is refused with a code; no node stops (one such GET used to stop a
node: ``/subnets/99999`` raised OverflowError through the ABCI connection and CometBFT exited)."""

from __future__ import annotations

import pytest

from gridmint.chain.app import MODULES
from tests.adversarial.hostile_network import HostileNetwork, abci_query, is_coded_refusal

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cometbft")]

HUGE_NUMBERS = ("99999", "65536", "-1", str(2**64), str(2**64 - 1), str(10**400), "1" * 5000, "１２", "0x10",
                "1e9", " 7", "+3", "٣")
OTHER_ARGS = ("", "gm1" + "q" * 38, "\u202e", "%00", "..", "a/b", "x" * 10_000)
# The paths that stopped a node (issue "The chain never halts"), with a huge number where the id goes.
REPORTED = ("/subnets/99999", "/subnets/99999/metagraph", "/market/order/{n}", "/market/lease/{n}",
            "/escrow/account/{n}", "/staking/hotkey/{n}/1", "/staking/hotkey/gm1x/{n}")


def every_query_path() -> list[str]:
    """Each module's query with each hostile argument, one and two deep."""
    paths = []
    for module in MODULES:
        for name in module.queries:
            head = f"/{module.name}" if name == "*" else f"/{module.name}/{name}"
            for arg in HUGE_NUMBERS + OTHER_ARGS:
                paths += [f"{head}/{arg}", f"{head}/{arg}/metagraph", f"{head}/1/{arg}"]
    return paths


def test_reported_paths_are_refused_with_a_code(hostile_network: HostileNetwork) -> None:
    since = min(hostile_network.heights())
    for template in REPORTED:
        for number in ("99999", str(2**64), str(10**30)):
            answer = abci_query(hostile_network, template.format(n=number))
            response = answer["result"]["response"]
            assert is_coded_refusal(response), (template, number, response)
    hostile_network.assert_healthy(since)


def test_out_of_range_numbers_in_every_query_path(hostile_network: HostileNetwork) -> None:
    since = min(hostile_network.heights())
    paths = every_query_path()
    assert len(paths) > 500
    for index, path in enumerate(paths):
        answer = abci_query(hostile_network, path, index=index % len(hostile_network.nodes))
        if "error" in answer:  # CometBFT refused it before the app (e.g. a path it cannot carry)
            assert answer["error"]["code"], (path, answer)
            continue
        response = answer["result"]["response"]
        assert int(response.get("code", 0)) == 0 or is_coded_refusal(response), (path, response)
    hostile_network.assert_healthy(since)


@pytest.mark.parametrize("height", ["-1", "0", "99999999", str(2**63 - 1), str(2**63), "abc"])
def test_hostile_heights(hostile_network: HostileNetwork, height: str) -> None:
    since = min(hostile_network.heights())
    answer = abci_query(hostile_network, "/bank/supply", height=height)
    if "error" not in answer:
        response = answer["result"]["response"]
        assert height == "0" or is_coded_refusal(response), response
    hostile_network.assert_healthy(since)


def test_hostile_query_data(hostile_network: HostileNetwork) -> None:
    since = min(hostile_network.heights())
    for data in (b"\xff" * 1000, "weights,bonds".encode() * 500, bytes(range(256))):
        for path in ("/subnets/1/metagraph", "/market/orders", "/credit/lines", "/bank/supply"):
            response = abci_query(hostile_network, path, data=data)["result"]["response"]
            assert int(response.get("code", 0)) == 0 or is_coded_refusal(response), (path, response)
    hostile_network.assert_healthy(since)
