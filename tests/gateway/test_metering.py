"""Metering believes a miner's count only up to what the text could hold, and rounds prices up to the grain."""

from __future__ import annotations

from gridmint.gateway.metering import billed, cost, embedding_bound, prompt_bound, text_bound
from gridmint.inference.backends.base import Generation


def test_an_inflated_count_is_capped_by_the_text() -> None:
    chat = Generation("m", messages=[{"role": "user", "content": "hello"}])
    assert prompt_bound(chat) == 16 + 8 + 5
    assert billed(12, prompt_bound(chat)) == 12
    assert billed(10_000, prompt_bound(chat)) == prompt_bound(chat)
    assert billed(None, text_bound("héllo")) == 10  # 6 bytes + 4
    assert billed(-3, 7) == 7
    assert embedding_bound(["ab", "c"]) == 7


def test_cost_rounds_up_to_the_grain() -> None:
    assert cost(1_000, 2_000_000) == 2_000_000
    assert cost(1, 1) == 1
    assert cost(1_500, 3) == 5
    assert cost(0, 10**9) == 0
