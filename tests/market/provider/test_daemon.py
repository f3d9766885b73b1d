"""The provider daemon's trust rule: a single-tenant runtime (ray) bids on and runs only the trusted tenants' orders;
the other runtimes serve anyone. The chain is a fake at the client seam (the live flows are in tests/e2e)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.market import MsgBid, MsgCloseLease
from gridmint.chain.tx import Msg
from gridmint.client.chain_client import TxOutcome
from gridmint.market.deployment import manifest_hash
from gridmint.market.provider.daemon import REASON_UNSUPPORTED, Lease, Provider, ProviderConfig
from gridmint.market.provider.inventory import Capacity, Need
from gridmint.market.provider.pricing import PerUnit
from gridmint.market.provider.runtimes.ray import RayRuntime
from tests.market.provider.test_runtimes import FakeJobs
from tests.support.chain import key
from tests.support.runtimes import UnstartableRuntime

TRUSTED, STRANGER = format_address(key("trusted").address), format_address(key("stranger").address)
MANIFEST = {"version": 1, "services": {"job": {"image": None, "command": ["python", "train.py"], "env": {},
                                               "ports": []}}}


class FakeChain:
    """Answers the daemon's order queries and records the transactions it sends."""

    def __init__(self) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.sent: list[Msg] = []

    def query(self, path: str, data: bytes = b"") -> Any:
        return self.orders[int(path.rsplit("/", 1)[1])]

    def execute(self, signer: Any, messages: list[Msg]) -> TxOutcome:
        self.sent += messages
        return TxOutcome("00", 7, 0, "", "", [])

    def order(self, order_id: int, tenant: str) -> None:
        self.orders[order_id] = {"id": order_id, "state": "open", "bids": [], "tenant": tenant, "max_price": 10_000,
                                 "resources": {"cpu_millis": 1_000, "memory_mb": 1_024, "gpu_units": 0},
                                 "manifest_hash": manifest_hash(MANIFEST).hex()}


def _provider(tmp_path: Path, runtime: Any, trusted: tuple[str, ...] = (TRUSTED,)) -> tuple[Provider, FakeChain]:
    chain = FakeChain()
    provider = Provider(key("provider"), chain, Capacity(4_000, 8_192, 10_000), PerUnit(1, 1, 1),  # type: ignore[arg-type]
                        runtime, ProviderConfig("http://127.0.0.1:1", trusted_tenants=trusted), tmp_path)
    return provider, chain


def test_a_single_tenant_runtime_bids_only_on_trusted_tenants_orders(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    provider, chain = _provider(tmp_path, RayRuntime("http://127.0.0.1:8265", client=FakeJobs()))
    chain.order(1, STRANGER)
    chain.order(2, TRUSTED)
    with caplog.at_level(logging.INFO, logger="gridmint.provider"):
        assert provider.consider_order(1) is False
    assert f"Not bidding on order 1: the ray runtime serves trusted tenants only and {STRANGER} is not one of " \
           "them." in caplog.text
    assert chain.sent == [] and provider.inventory.taken == {}  # no bid, nothing reserved
    assert provider.consider_order(2) is True
    assert chain.sent == [MsgBid(2, 2)] and list(provider.inventory.taken) == ["order:2"]


def test_other_runtimes_bid_on_anyones_order(tmp_path: Path) -> None:
    provider, chain = _provider(tmp_path, UnstartableRuntime(), trusted=())
    chain.order(1, STRANGER)
    assert provider.consider_order(1) is True and chain.sent == [MsgBid(1, 2)]


def test_an_untrusted_tenants_manifest_is_refused_and_its_lease_ended(tmp_path: Path) -> None:
    jobs = FakeJobs()
    provider, chain = _provider(tmp_path, RayRuntime("http://127.0.0.1:8265", client=jobs))
    chain.order(1, STRANGER)
    # Won before a restart that changed the trusted tenants: the lease exists, the tenant is no longer trusted.
    provider.leases[5] = Lease(5, 1, STRANGER, 2, Need(1_000, 1_024, 0), ())
    with pytest.raises(ChainError) as caught:
        provider.deliver_manifest(5, STRANGER, MANIFEST)
    assert (caught.value.kind.module, caught.value.kind.code, caught.value.kind.name) == \
        ("provider", 11, "untrusted_tenant")
    assert f"runs trusted tenants only and {STRANGER} is not one of them" in str(caught.value)
    assert jobs.submitted == []  # nothing ran on the cluster
    assert chain.sent == [MsgCloseLease(5, REASON_UNSUPPORTED)] and provider.leases[5].state == "stopped"


def test_a_trusted_tenants_manifest_runs_on_ray(tmp_path: Path) -> None:
    jobs = FakeJobs()
    provider, chain = _provider(tmp_path, RayRuntime("http://127.0.0.1:8265", client=jobs))
    chain.order(1, TRUSTED)
    provider.leases[5] = Lease(5, 1, TRUSTED, 2, Need(1_000, 1_024, 0), ())
    assert provider.deliver_manifest(5, TRUSTED, MANIFEST).state == "running"
    assert [job["entrypoint"] for job in jobs.submitted] == ["python train.py"] and chain.sent == []
