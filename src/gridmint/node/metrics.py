"""Prometheus metrics of a node: height, block interval, mempool size and committed transactions."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class NodeMetrics:
    def __init__(self, mempool_size: Callable[[], int]) -> None:
        """``mempool_size``: read when the metrics are scraped (setting a gauge on every submitted transaction
        costs the node a lock and a float each time)."""
        self.registry = CollectorRegistry()
        self.height = Gauge("gridmint_block_height", "Height of the last committed block", registry=self.registry)
        self.block_interval = Histogram(
            "gridmint_block_interval_seconds", "Seconds between consecutive blocks", registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.block_txs = Histogram("gridmint_block_txs", "Transactions per block", registry=self.registry,
                                   buckets=(0, 1, 10, 100, 1000, 5000, 10000))
        self.mempool_size = Gauge("gridmint_mempool_size", "Transactions waiting in the mempool",
                                  registry=self.registry)
        self.mempool_size.set_function(mempool_size)
        self.txs_total = Counter("gridmint_txs_committed", "Transactions committed in blocks",
                                 registry=self.registry)
        self.worker_signatures = Counter("gridmint_worker_verified_signatures",
                                         "Transaction signatures checked by the signature workers (node/sigverify.py)",
                                         registry=self.registry)
        self.txs_per_second = Gauge("gridmint_txs_per_second",
                                    "Committed transactions per second over the last 10 blocks",
                                    registry=self.registry)
        self._recent: deque[tuple[int, int]] = deque(maxlen=11)  # (time_ns, txs) per block

    def block_committed(self, height: int, time_ns: int, txs: int) -> None:
        if self._recent:
            self.block_interval.observe((time_ns - self._recent[-1][0]) / 1e9)
        self._recent.append((time_ns, txs))
        self.height.set(height)
        self.block_txs.observe(txs)
        self.txs_total.inc(txs)
        if len(self._recent) > 1:
            span_ns = self._recent[-1][0] - self._recent[0][0]
            counted = sum(n for _, n in list(self._recent)[1:])
            self.txs_per_second.set(counted * 1e9 / span_ns if span_ns > 0 else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
