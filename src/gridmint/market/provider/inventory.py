"""What a provider offers and what is taken: GPUs found through NVML, CPU and memory from the OS, reservations.

A bid reserves the resources it offers, so the provider never promises the same GPU twice; a lost or expired
order gives them back; a lease turns the reservation into an allocation with concrete GPU indices (pinned into
the workload through ``CUDA_VISIBLE_DEVICES``). A machine without NVIDIA's driver is a CPU-only provider.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("gridmint.provider")


@dataclass(frozen=True)
class Gpu:
    index: int
    model: str
    vram_gb: int


@dataclass(frozen=True)
class Capacity:
    """The resources offered, as they are registered on chain."""

    cpu_millis: int
    memory_mb: int
    storage_mb: int
    gpus: tuple[Gpu, ...] = ()

    @property
    def gpu_model(self) -> str:
        return self.gpus[0].model if self.gpus else ""

    @property
    def vram_gb(self) -> int:
        return min((g.vram_gb for g in self.gpus), default=0)


def discover_gpus() -> tuple[Gpu, ...]:
    """NVIDIA GPUs through NVML; none (and one log line) where the library or the driver is missing."""
    try:
        import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py

        pynvml.nvmlInit()
    except Exception as error:  # no driver, no library: a CPU-only provider
        log.info("No NVIDIA GPU found through NVML (%s); offering CPU and memory only.", error.__class__.__name__)
        return ()
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append(Gpu(index, short_model(name), int(memory) // 2**30))
        return tuple(gpus)
    finally:
        pynvml.nvmlShutdown()


def short_model(name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``H100``: the model names tenants write in deployment files."""
    words = [w for w in name.replace("NVIDIA", "").replace("GeForce", "").split() if w]
    return words[0] if words else name


def discover_capacity() -> Capacity:
    cpus = len(os.sched_getaffinity(0))
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    stat = os.statvfs(".")
    return Capacity(cpus * 1000, memory_mb, stat.f_bavail * stat.f_frsize // 2**20, discover_gpus())


@dataclass(frozen=True)
class Need:
    cpu_millis: int
    memory_mb: int
    gpu_units: int

    @classmethod
    def of_order(cls, order: dict[str, Any]) -> Need:
        resources = order["resources"]
        return cls(int(resources["cpu_millis"]), int(resources["memory_mb"]), int(resources["gpu_units"]))


@dataclass
class Inventory:
    capacity: Capacity
    # key -> (need, GPU indices): keys are "order:<id>" while bidding, "lease:<id>" once leased
    taken: dict[str, tuple[Need, tuple[int, ...]]] = field(default_factory=dict)

    def free(self) -> tuple[int, int, list[int]]:
        cpu = self.capacity.cpu_millis - sum(n.cpu_millis for n, _ in self.taken.values())
        memory = self.capacity.memory_mb - sum(n.memory_mb for n, _ in self.taken.values())
        used = {i for _, gpus in self.taken.values() for i in gpus}
        return cpu, memory, [g.index for g in self.capacity.gpus if g.index not in used]

    def shortfall(self, need: Need) -> str | None:
        """Why ``need`` does not fit in what is free now, or None if it does."""
        cpu, memory, gpus = self.free()
        if need.cpu_millis > cpu:
            return f"{cpu}m CPU free, {need.cpu_millis}m needed"
        if need.memory_mb > memory:
            return f"{memory} MB free, {need.memory_mb} MB needed"
        if need.gpu_units > len(gpus):
            return f"{len(gpus)} GPUs free, {need.gpu_units} needed"
        return None

    def reserve(self, key: str, need: Need) -> bool:
        if key in self.taken or self.shortfall(need) is not None:
            return False
        self.taken[key] = (need, tuple(self.free()[2][:need.gpu_units]))
        return True

    def move(self, old: str, new: str) -> tuple[int, ...] | None:
        """Rename a reservation (order -> lease); returns its GPU indices, or None if there was none."""
        entry = self.taken.pop(old, None)
        if entry is None:
            return None
        self.taken[new] = entry
        return entry[1]

    def release(self, key: str) -> None:
        self.taken.pop(key, None)
