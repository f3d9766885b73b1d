"""Prometheus metrics of a gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from gridmint.inference.asgi import AnswerMeter


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.meter = AnswerMeter("gridmint_gateway", self.registry)
        self.answered = self.meter.answered
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
