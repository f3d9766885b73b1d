"""Counting what a request used and what it costs.

The miner's signed usage is preferred, but never believed past what the text itself could hold: a token is at
least one byte of UTF-8 text (special tokens aside), so a count above the bytes of the text plus a small allowance
for a chat template is an inflated count, and the bound is billed instead. The price is the one the miner
announced on chain, in grains per 1k tokens, rounded up to the grain.
"""

from __future__ import annotations

from gridmint.inference.backends import tool_prompt
from gridmint.inference.backends.base import Generation

# What a chat template adds: per message its role markers, and once the default system prompt many templates put
# in when the chat has none (SmolLM2's is 20 tokens: "Hi" alone is 31 tokens, measured in
# tests/gateway/test_metering.py). A bound below the real count underpays the miner on every short chat; each token
# above it is one a miner could claim and not use.
TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS = 32


def text_bound(text: str) -> int:
    return len(text.encode()) + 4


def prompt_bound(request: Generation) -> int:
    """The most tokens the prompt may take: its text, the chat template, and what tools, tool calls and a schema
    add to it (``tool_prompt``)."""
    if request.messages is not None:
        return TEMPLATE_TOKENS + tool_prompt.prompt_bytes(request) + sum(
            TEMPLATE_TOKENS_PER_MESSAGE + len(m["content"].encode()) for m in request.messages)
    return TEMPLATE_TOKENS + len((request.prompt or "").encode())


def embedding_bound(inputs: list[str]) -> int:
    return sum(len(text.encode()) + 2 for text in inputs)


def billed(reported: int | None, bound: int) -> int:
    """The miner's count when it is believable, the bound otherwise (and when the miner reported nothing)."""
    if reported is None or reported < 0:
        return bound
    return min(reported, bound)


def cost(tokens: int, price_per_1k: int) -> int:
    """Grains for ``tokens`` at ``price_per_1k`` grains per 1,000 tokens, rounded up."""
    return (tokens * price_per_1k + 999) // 1000
