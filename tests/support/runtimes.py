"""Stand-ins for a provider's runtime (market/provider/runtimes), for tests of what happens before a workload runs."""

from __future__ import annotations

from typing import Any

from gridmint.market.provider.runtimes.base import LaunchSpec


class UnstartableRuntime:
    """A runtime that isolates leases from each other (not single-tenant), records every launch asked of it and
    fails it: for tests in which no workload may start."""

    single_tenant = False

    def __init__(self, name: str = "process") -> None:
        self.name = name
        self.started: list[LaunchSpec] = []

    def start(self, spec: LaunchSpec) -> Any:
        self.started.append(spec)
        raise AssertionError(f"the {self.name} runtime must not start a workload in this test")
