"""The shared test support (tests/support/): waiting fails with what it waited for, and nothing imports the modules
it replaced (tests/helpers.py and the *_network.py modules were moved, not kept as shims)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.source import imported_modules
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
REPLACED = {"tests.helpers", "tests.gateway_network", "tests.live_network", "tests.market_network", "tests.fuzzing",
            "tests.gateway.settlement_market"}


def test_wait_for_returns_the_first_truthy_value_of_the_condition() -> None:
    answers = iter([None, 0, "", "ready", "later"])
    assert wait_for(lambda: next(answers), "an answer", timeout_s=10, interval_s=0) == "ready"


def test_wait_for_fails_saying_what_it_waited_for_and_what_it_saw() -> None:
    polls: list[int] = []
    with pytest.raises(AssertionError, match="waiting for the moon:\nit polled") as failure:
        wait_for(lambda: polls.append(1), "the moon", timeout_s=0.05, interval_s=0.01,
                 detail=lambda: f"it polled {len(polls)} times")
    assert polls, failure.value  # the condition was asked at least once before the test failed


def test_nothing_imports_the_modules_tests_support_replaced() -> None:
    found = []
    for path in sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]):
        source = path.read_text()
        names = set(imported_modules(source))
        names |= {f"tests.{alias}" for alias in ("gateway_network", "market_network")
                  if f"from tests import {alias}" in source}
        found += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(names & REPLACED)]
    assert found == []
    assert not any((ROOT / "tests" / name).exists() for name in ("helpers.py", "gateway_network.py",
                                                                "live_network.py", "market_network.py", "fuzzing.py"))
