"""Routing order: incentive first, then what the gateway measured; preferences filter; a breaker sends a failing
miner to the back until it has rested."""

from __future__ import annotations

import pytest

from gridmint.chain.errors import ChainError
from gridmint.gateway.routing import BREAKER_FAILURES, Candidate, Directory, Preferences, parse_preferences

ONE = 1 << 30


def miner(hotkey: str, incentive: float, price: int = 1_000, models: tuple[str, ...] = ("echo",),
          netuid: int = 1) -> Candidate:
    return Candidate(netuid, 0, hotkey, f"http://{hotkey}", models, price, int(incentive * ONE), "text-generation")


def test_order_by_incentive_then_measured_health() -> None:
    directory = Directory([miner("a", 0.2), miner("b", 0.7), miner("c", 0.1, price=10)])
    order = directory.order(directory.serving("echo"), Preferences())
    assert [c.hotkey for c in order] == ["b", "a", "c"]
    assert directory.order(directory.candidates, Preferences(sort="price"))[0].hotkey == "c"
    for _ in range(BREAKER_FAILURES):
        directory.health_of("b").failure()
    assert [c.hotkey for c in directory.order(directory.candidates, Preferences())] == ["a", "c", "b"]
    directory.health_of("b").success(0.01)
    assert directory.order(directory.candidates, Preferences())[0].hotkey == "b"


def test_equal_incentive_prefers_the_faster_miner() -> None:
    directory = Directory([miner("slow", 0.5), miner("fast", 0.5)])
    directory.health_of("slow").success(0.2)
    directory.health_of("fast").success(0.01)
    assert [c.hotkey for c in directory.order(directory.candidates, Preferences())] == ["fast", "slow"]
    assert directory.order(directory.candidates, Preferences(sort="latency"))[0].hotkey == "fast"


def test_preferences_filter() -> None:
    directory = Directory([miner("a", 0.5, price=3_000_000), miner("b", 0.2, price=1_000_000)])
    prefs = parse_preferences({"max_price": "0.002"})
    assert prefs.max_price == 2_000_000
    assert [c.hotkey for c in directory.order(directory.candidates, prefs)] == ["b"]
    assert [c.hotkey for c in directory.order(directory.candidates, parse_preferences({"only": ["a"]}))] == ["a"]
    assert directory.order(directory.candidates, parse_preferences({"ignore": ["a", "b"]})) == []
    for bad in ({"sort": "random"}, {"max_price": "lots"}, {"only": "a"}, {"speed": 1}, [1]):
        with pytest.raises(ChainError) as caught:
            parse_preferences(bad)
        assert caught.value.kind.name == "bad_preferences"


def test_models_and_subnets_are_listed() -> None:
    directory = Directory([miner("a", 0.5, models=("smol",)), miner("e", 0.5, models=("emb",), netuid=2)])
    assert directory.models() == [("emb", "text-generation"), ("smol", "text-generation"),
                                  ("subnet-1", "text-generation"), ("subnet-2", "text-generation")]
    assert [c.hotkey for c in directory.serving("subnet-2")] == ["e"]
    assert directory.serving("subnet-x") == [] and directory.serving("nothing") == []
