"""Runtimes that run a lease's workload; chosen by name (``process`` unless the provider says otherwise)."""

from __future__ import annotations

from gridmint.market.provider.runtimes.base import Runtime
from gridmint.market.provider.runtimes.docker import DockerRuntime
from gridmint.market.provider.runtimes.process import DEFAULT_DISK_MB, ProcessRuntime
from gridmint.market.provider.runtimes.ray import RayRuntime

RUNTIMES = ("process", "ray", "docker")


def make_runtime(name: str, ray_address: str = "http://127.0.0.1:8265",
                 lease_disk_mb: int = DEFAULT_DISK_MB) -> Runtime:
    if name == "ray":
        return RayRuntime(ray_address)
    if name == "docker":
        return DockerRuntime()
    if name == "process":
        return ProcessRuntime(lease_disk_mb)
    raise ValueError(f"unknown runtime {name}; expected one of {', '.join(RUNTIMES)}")
