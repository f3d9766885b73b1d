"""Latency figures as the benches quote them: the median and the 99th percentile, in milliseconds."""

from __future__ import annotations

import statistics


def p50_p99_ms(seconds: list[float]) -> tuple[float, float]:
    """The median and the 99th percentile of latencies measured in seconds, in milliseconds; the 99th is a sample
    itself (nearest rank: the one at 99 % of the sorted list), not an interpolation between two."""
    ordered = sorted(seconds)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000
