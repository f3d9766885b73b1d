"""Prometheus metrics of a provider daemon."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class ProviderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.bids = Counter("gridmint_provider_bids", "Bids placed", registry=self.registry)
        self.leases = Gauge("gridmint_provider_leases_active", "Leases this provider serves now",
                            registry=self.registry)
        self.failed = Counter("gridmint_provider_workloads_failed", "Workloads that ended or stopped answering",
                              registry=self.registry)
        self.withdrawn = Counter("gridmint_provider_withdrawn_grains", "Earnings withdrawn from escrow, in grains",
                                 registry=self.registry)
        self.proxied = Counter("gridmint_provider_proxied_requests", "Requests forwarded to workloads, by status",
                               ["status"], registry=self.registry)
        self.refused = Counter("gridmint_provider_refused", "Tenant requests refused, by reason", ["reason"],
                               registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
