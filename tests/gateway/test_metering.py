"""Metering believes a miner's count only up to what the text could hold, and rounds prices up to the grain."""

from __future__ import annotations

import asyncio
import os

import pytest

from gridmint.gateway.metering import billed, cost, embedding_bound, prompt_bound, text_bound
from gridmint.inference.backends.base import Generation
from gridmint.inference.backends.registry import load_backend


def test_an_inflated_count_is_capped_by_the_text() -> None:
    chat = Generation("m", messages=[{"role": "user", "content": "hello"}])
    assert prompt_bound(chat) == 32 + 8 + 5
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


CHATS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "?"}],
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "ok"}],
    [{"role": "user", "content": "数学"}],
]


@pytest.mark.slow
def test_the_bound_holds_what_a_real_model_counts_so_honest_miners_are_paid_in_full() -> None:
    """SmolLM2's chat template puts in a default system prompt: the bound must cover it, or the gateway bills less
    than the miner honestly used on every short chat."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    llama = load_backend("llama-cpp")
    for messages in CHATS:
        request = Generation(model=llama.model, messages=messages, max_tokens=1)
        counted = asyncio.run(llama.generate(request)).prompt_tokens
        assert counted <= prompt_bound(request), (messages, counted, prompt_bound(request))
        assert billed(counted, prompt_bound(request)) == counted
