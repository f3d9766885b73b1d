"""Reservations never promise the same CPU, memory or GPU twice; NVML's absence means a CPU-only provider."""

from __future__ import annotations

import pytest

from gridmint.market.provider.inventory import Capacity, Gpu, Inventory, Need, discover_capacity, short_model

CAPACITY = Capacity(4_000, 8_192, 100_000, (Gpu(0, "A100", 80), Gpu(1, "A100", 80)))


def test_reservations_add_up_and_release() -> None:
    inventory = Inventory(CAPACITY)
    assert inventory.reserve("order:1", Need(3_000, 4_096, 1))
    assert inventory.shortfall(Need(2_000, 1, 0)) == "1000m CPU free, 2000m needed"
    assert inventory.shortfall(Need(1_000, 5_000, 0)) == "4096 MB free, 5000 MB needed"
    assert not inventory.reserve("order:2", Need(1_000, 1_000, 2))  # one GPU left
    assert "order:2" not in inventory.taken
    assert inventory.reserve("order:3", Need(1_000, 1_000, 1))
    assert {inventory.taken["order:1"][1], inventory.taken["order:3"][1]} == {(0,), (1,)}
    assert not inventory.reserve("order:3", Need(0, 0, 0)), "a key is reserved once"
    inventory.release("order:1")
    assert inventory.free() == (3_000, 7_192, [0])


def test_a_reservation_becomes_the_lease_with_its_gpus() -> None:
    inventory = Inventory(CAPACITY)
    inventory.reserve("order:7", Need(1_000, 1_000, 2))
    assert inventory.move("order:7", "lease:3") == (0, 1)
    assert inventory.move("order:7", "lease:4") is None
    inventory.release("lease:3")
    assert inventory.taken == {}


def test_model_names_are_the_ones_tenants_write() -> None:
    assert short_model("NVIDIA H100 80GB HBM3") == "H100"
    assert short_model("NVIDIA GeForce RTX 4090") == "RTX"
    assert short_model("Tesla T4") == "Tesla"


def _gpus_nvml_reports() -> int:
    """How many GPUs NVML itself counts here (0 where the library or the driver is missing)."""
    try:
        import pynvml  # type: ignore[import-untyped]

        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


def test_this_machine_offers_its_cpus_memory_and_the_gpus_nvml_reports() -> None:
    capacity = discover_capacity()
    assert capacity.cpu_millis >= 1_000 and capacity.memory_mb > 0
    assert len(capacity.gpus) == _gpus_nvml_reports()  # none on a machine without a driver, all on a GPU host
    if not capacity.gpus:
        assert capacity.gpu_model == "" and capacity.vram_gb == 0


def test_without_a_driver_the_provider_offers_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    pynvml = pytest.importorskip("pynvml")

    def no_driver() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    assert discover_capacity().gpus == ()
