"""Prometheus metrics of a miner."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class MinerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("gridmint_miner_requests", "Requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("gridmint_miner_latency_seconds", "Time from request to the last byte",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60))
        self.tokens = Counter("gridmint_miner_tokens", "Tokens processed", ["kind"], registry=self.registry)
        self.prompt_tokens = self.tokens.labels("prompt")
        self.completion_tokens = self.tokens.labels("completion")
        self.in_flight = Gauge("gridmint_miner_in_flight", "Requests being served", registry=self.registry)
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self.refused = Counter("gridmint_miner_refused", "Requests refused before the backend, by reason",
                               ["reason"], registry=self.registry)

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answer; label children are cached because ``labels()`` costs more than the count."""
        key = (endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(endpoint, str(status)),
                                              self.latency.labels(endpoint))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
