"""Prometheus metrics of a gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("gridmint_gateway_requests", "Requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("gridmint_gateway_latency_seconds", "Time from request to the last byte",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60))
        self.failovers = Counter("gridmint_gateway_failovers", "Miners skipped after a failure",
                                 registry=self.registry)
        self.broken_streams = Counter("gridmint_gateway_broken_streams", "Streams a miner broke after the first token",
                                      registry=self.registry)
        self.tokens = Counter("gridmint_gateway_tokens", "Tokens billed", ["kind"], registry=self.registry)
        self.prompt_tokens = self.tokens.labels("prompt")
        self.completion_tokens = self.tokens.labels("completion")
        self.metered = Counter("gridmint_gateway_metered_grains", "Grains metered for miners",
                               registry=self.registry)
        self.settled = Counter("gridmint_gateway_settled_grains", "Grains settled on chain", registry=self.registry)
        self.unsettled = Gauge("gridmint_gateway_unsettled_grains", "Grains metered and not yet in a batch",
                               registry=self.registry)
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(endpoint, str(status)),
                                              self.latency.labels(endpoint))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
