"""Prometheus metrics of a miner."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from gridmint.inference.asgi import AnswerMeter


class MinerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.meter = AnswerMeter("gridmint_miner", self.registry)
        self.answered = self.meter.answered
        self.tokens = Counter("gridmint_miner_tokens", "Tokens processed", ["kind"], registry=self.registry)
        self.prompt_tokens = self.tokens.labels("prompt")
        self.completion_tokens = self.tokens.labels("completion")
        self.in_flight = Gauge("gridmint_miner_in_flight", "Requests being served", registry=self.registry)
        self.refused = Counter("gridmint_miner_refused", "Requests refused before the backend, by reason",
                               ["reason"], registry=self.registry)
        self.receipts = Counter("gridmint_miner_receipts", "Receipts gateways asked for, signed or why not",
                                ["outcome"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
