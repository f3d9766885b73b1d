"""bench/latency.py: the median and 99th percentile the benches quote."""

from __future__ import annotations

from latency import p50_p99_ms


def test_the_median_and_the_99th_percentile_in_milliseconds() -> None:
    seconds = [(i + 1) / 1000 for i in range(200)][::-1]  # 1 ms to 200 ms, in no particular order
    p50, p99 = p50_p99_ms(seconds)
    assert p50 == 100.5  # the median of an even count falls between the two middle samples
    assert p99 == 199.0  # a sample itself: the 199th of 200


def test_one_sample_is_both() -> None:
    assert p50_p99_ms([0.25]) == (250.0, 250.0)
