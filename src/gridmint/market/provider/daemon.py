"""The provider's state machine: follows the chain block by block, bids, runs leases, checks them, gets paid.

Everything here is synchronous and runs on one worker thread at a time (``Provider.lock``): the chain's events,
the health checks and the tenant's requests all pass through it, so a lease is never started and stopped at once.
What the provider does, it logs in a sentence; what it earns and runs, it counts in Prometheus metrics.

Reason codes a provider gives when it closes a lease (the chain records them):
``1`` a service failed, ``2`` a service finished, ``3`` a service stopped answering health checks,
``4`` the manifest cannot run here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError, register
from gridmint.chain.market import MsgBid, MsgCloseLease, MsgRegisterProvider, MsgWithdraw
from gridmint.chain.tx import Msg
from gridmint.chain.units import format_mint
from gridmint.client.blocks import BlockEvents
from gridmint.client.chain_client import ChainClient, TxOutcome
from gridmint.client.signing import NOT_PERMITTED
from gridmint.market.deployment import manifest_hash, parse_manifest
from gridmint.market.provider.inventory import Capacity, Inventory, Need
from gridmint.market.provider.metrics import ProviderMetrics
from gridmint.market.provider.pricing import PriceRule
from gridmint.market.provider.runtimes.base import (
    EXITED,
    UNSUPPORTED_MANIFEST,
    LaunchSpec,
    Runtime,
    ServiceState,
    Workload,
    first_failure,
)

log = logging.getLogger("gridmint.provider")

UNKNOWN_LEASE = register("provider", 4, "unknown_lease")
MANIFEST_MISMATCH = register("provider", 5, "manifest_mismatch")
ALREADY_RUNNING = register("provider", 6, "already_running")
UNTRUSTED_TENANT = register("provider", 11, "untrusted_tenant")

REASON_FAILED, REASON_FINISHED, REASON_UNHEALTHY, REASON_UNSUPPORTED = 1, 2, 3, 4
AWAITING_MANIFEST, STARTING, ACTIVE, STOPPED = "awaiting_manifest", "starting", "running", "stopped"
UNHEALTHY_CHECKS = 3  # consecutive failed port checks before a lease is closed
STARTUP_GRACE_CHECKS = 30  # checks a new workload gets to open its port


@dataclass(frozen=True)
class ProviderConfig:
    host_uri: str
    region: str = ""
    tags: tuple[str, ...] = ()
    bond: int = 0
    withdraw_every: int = 100  # blocks; 0 never withdraws on its own (closing still pays)
    # Addresses (gm1...) a single-tenant runtime (ray) serves; other runtimes serve anyone and ignore this.
    trusted_tenants: tuple[str, ...] = ()


@dataclass
class Lease:
    id: int
    order: int
    tenant: str
    price: int
    need: Need
    gpus: tuple[int, ...]
    state: str = AWAITING_MANIFEST
    workload: Workload | None = None
    reason: str = ""
    health_checks: int = 0
    health_failures: int = 0
    answered_once: set[str] = field(default_factory=set)


class Provider:
    def __init__(self, key: PrivateKey, client: ChainClient, capacity: Capacity, price: PriceRule,
                 runtime: Runtime, config: ProviderConfig, data_dir: Path) -> None:
        self.key = key
        self.address = format_address(key.address)
        self.client = client
        self.inventory = Inventory(capacity)
        self.price = price
        self.runtime = runtime
        self.config = config
        self.data_dir = data_dir
        self.leases: dict[int, Lease] = {}
        self.metrics = ProviderMetrics()
        self.lock = threading.RLock()
        self._last_withdraw = 0

    # --- chain writes ----------------------------------------------------------------------------------

    def _send(self, message: Msg) -> TxOutcome:
        return self.client.execute(self.key, [message])

    def register(self) -> bool:
        """Put this provider's URI and resources on chain unless they are there already; True if a tx was sent."""
        capacity = self.inventory.capacity
        wanted: dict[str, Any] = {
            "host_uri": self.config.host_uri, "gpu_model": capacity.gpu_model, "gpu_count": len(capacity.gpus),
            "vram_gb": capacity.vram_gb, "cpu_millis": capacity.cpu_millis, "memory_mb": capacity.memory_mb,
            "storage_mb": capacity.storage_mb, "region": self.config.region, "tags": list(self.config.tags)}
        current = next((p for p in self.client.query("/market/providers") if p["owner"] == self.address), None)
        bond = self.config.bond or (int(current["bond"]) if current else
                                    int(self.client.query("/market/params")["min_bond"]))
        if current is not None and all(current[k] == v for k, v in wanted.items()) and current["bond"] == bond:
            log.info("The chain already lists this provider at %s.", self.config.host_uri)
            return False
        outcome = self._send(MsgRegisterProvider(bond=bond, **wanted))
        log.info("Registered as a provider at %s in block %d: %s CPU, %d MB, %d GPUs; bond %s.", self.config.host_uri,
                 outcome.height, f"{capacity.cpu_millis / 1000:g}", capacity.memory_mb, len(capacity.gpus),
                 format_mint(bond))
        return True

    # --- following the chain ---------------------------------------------------------------------------

    def handle_block(self, block: BlockEvents) -> None:
        with self.lock:
            for event in block.events:
                try:
                    self._handle_event(event.type, event.attributes)
                except ChainError as error:
                    log.warning("Could not act on %s in block %d: %s", event.type, block.height, error)
            every = self.config.withdraw_every
            if every and block.height - self._last_withdraw >= every:
                self._last_withdraw = block.height
                self.withdraw_all()

    def _handle_event(self, kind: str, attrs: dict[str, str]) -> None:
        if kind == "order_created":
            self.consider_order(int(attrs["order"]))
        elif kind == "lease_started":
            order_id, lease_id = int(attrs["order"]), int(attrs["lease"])
            if attrs["provider"] == self.address:
                self.take_lease(lease_id, order_id)
            else:
                self.inventory.release(f"order:{order_id}")
        elif kind in ("order_expired", "order_closed"):
            self.inventory.release(f"order:{attrs['order']}")
        elif kind == "lease_closed" and int(attrs["lease"]) in self.leases:
            self.stop_lease(int(attrs["lease"]), attrs.get("reason", "closed"))
        elif kind == "escrow_exhausted" and int(attrs["account"]) in self.leases:
            self.stop_lease(int(attrs["account"]), "the tenant's escrow ran out")

    def consider_order(self, order_id: int) -> bool:
        """Bid on an open order that fits what is free, at our price if it is within the order's max."""
        order = self.client.query(f"/market/order/{order_id}")
        if order["state"] != "open" or any(b["provider"] == self.address for b in order["bids"]):
            return False
        if not self._serves(order["tenant"]):
            log.info("Not bidding on order %d: the %s runtime serves trusted tenants only and %s is not one of them.",
                     order_id, self.runtime.name, order["tenant"])
            return False
        need = Need.of_order(order)
        shortfall = self.inventory.shortfall(need)
        if shortfall is not None:
            log.info("Not bidding on order %d: %s.", order_id, shortfall)
            return False
        price = self.price(order)
        if price > order["max_price"]:
            log.info("Not bidding on order %d: our price %s per block is above its max %s.", order_id,
                     format_mint(price), format_mint(order["max_price"]))
            return False
        key = f"order:{order_id}"
        self.inventory.reserve(key, need)
        try:
            self._send(MsgBid(order_id, price))
        except ChainError as error:
            self.inventory.release(key)
            log.info("Our bid on order %d was refused: %s", order_id, error)
            return False
        self.metrics.bids.inc()
        log.info("Bid %s per block on order %d (%s CPU, %d MB, %d GPUs).", format_mint(price), order_id,
                 f"{need.cpu_millis / 1000:g}", need.memory_mb, need.gpu_units)
        return True

    def take_lease(self, lease_id: int, order_id: int) -> Lease:
        info = self.client.query(f"/market/lease/{lease_id}")
        order = self.client.query(f"/market/order/{order_id}")
        need = Need.of_order(order)
        gpus = self.inventory.move(f"order:{order_id}", f"lease:{lease_id}")
        if gpus is None:  # e.g. the daemon restarted between bid and lease: take what is free
            self.inventory.reserve(f"lease:{lease_id}", need)
            gpus = self.inventory.taken.get(f"lease:{lease_id}", (need, ()))[1]
        lease = Lease(lease_id, order_id, info["tenant"], int(info["price"]), need, gpus)
        self.leases[lease_id] = lease
        self.metrics.leases.set(len(self.leases))
        log.info("Won order %d: lease %d with %s at %s per block; waiting for the tenant's manifest.", order_id,
                 lease_id, info["tenant"], format_mint(lease.price))
        return lease

    def reconcile(self) -> None:
        """After a start or a lost subscription: bid on open orders we have not bid on, pick up our open leases."""
        with self.lock:
            for order in self.client.query("/market/orders", b"open"):
                try:
                    self.consider_order(int(order["id"]))
                except ChainError as error:
                    log.warning("Could not consider order %s: %s", order["id"], error)
            for order in self.client.query("/market/orders", b"leased"):
                lease_id = int(order["lease"])
                if lease_id in self.leases:
                    continue
                info = self.client.query(f"/market/lease/{lease_id}")
                if info["open"] and info["provider"] == self.address:
                    self.take_lease(lease_id, int(order["id"]))
            for lease_id in [i for i in self.leases if not self.client.query(f"/market/lease/{i}")["open"]]:
                self.stop_lease(lease_id, "closed on chain while we were away")

    # --- the tenant's requests (already authenticated by signature) ------------------------------------

    def lease_for(self, lease_id: int, caller: str) -> Lease:
        """The lease, if ``caller`` is its tenant; otherwise the same refusal whether or not it exists."""
        lease = self.leases.get(lease_id)
        if lease is None:
            raise UNKNOWN_LEASE(f"this provider runs no lease {lease_id}")
        if lease.tenant != caller:
            raise NOT_PERMITTED(f"lease {lease_id} belongs to another tenant; sign with the tenant's key")
        return lease

    def deliver_manifest(self, lease_id: int, caller: str, manifest: Any) -> Lease:
        """Check the manifest against the hash on chain and start it; raises (and starts nothing) otherwise."""
        with self.lock:
            lease = self.lease_for(lease_id, caller)
            if not self._serves(lease.tenant):  # e.g. won before a restart that changed the trusted tenants
                refusal = UNTRUSTED_TENANT(f"this provider's {self.runtime.name} runtime lets one lease reach "
                                           f"another's, so it runs trusted tenants only and {lease.tenant} is not "
                                           "one of them; order from a provider that serves anyone")
                if lease.state == AWAITING_MANIFEST:  # it can never run here: end it rather than bill for it
                    self.close_lease(lease_id, REASON_UNSUPPORTED, str(refusal))
                raise refusal
            if lease.state in (STARTING, ACTIVE):
                raise ALREADY_RUNNING(f"lease {lease_id} already runs its manifest")
            if lease.state == STOPPED:
                raise UNKNOWN_LEASE(f"lease {lease_id} has ended ({lease.reason})")
            services = parse_manifest(manifest)
            on_chain = bytes.fromhex(self.client.query(f"/market/order/{lease.order}")["manifest_hash"])
            if manifest_hash(manifest) != on_chain:
                raise MANIFEST_MISMATCH(f"the manifest's SHA-256 {manifest_hash(manifest).hex()[:16]}… differs "
                                        f"from the hash ordered on chain {on_chain.hex()[:16]}…; send the "
                                        "deployment file the order was created from")
            lease.state = STARTING
            spec = LaunchSpec(lease_id, services, lease.need, lease.gpus, self.data_dir / "leases" / str(lease_id))
            try:
                lease.workload = self.runtime.start(spec)
            except ChainError as error:
                lease.state = AWAITING_MANIFEST
                if error.kind == UNSUPPORTED_MANIFEST:
                    self.close_lease(lease_id, REASON_UNSUPPORTED, str(error))
                raise
            lease.state = ACTIVE
            log.info("Lease %d runs %s on the %s runtime.", lease_id, ", ".join(s.name for s in services),
                     self.runtime.name)
            return lease

    def _serves(self, tenant: str) -> bool:
        """Whether this provider runs ``tenant``'s workloads: anyone's, unless the runtime is single-tenant."""
        return not self.runtime.single_tenant or tenant in self.config.trusted_tenants

    def status(self, lease: Lease) -> dict[str, Any]:
        """What the tenant sees: each service's state and whether its port accepts connections yet."""
        states: dict[str, ServiceState] = lease.workload.states() if lease.workload else {}
        services = {}
        for name, s in states.items():
            address = lease.workload.endpoint(name) if lease.workload else None
            if s.state == "running" and address is not None and name not in lease.answered_once \
                    and address.answers():
                lease.answered_once.add(name)
            services[name] = {"state": s.state, "exit_code": s.exit_code, "detail": s.detail,
                              "ready": s.state == "running" and (address is None or name in lease.answered_once),
                              "path": f"/leases/{lease.id}/{name}/"}
        return {"lease": lease.id, "order": lease.order, "state": lease.state, "reason": lease.reason,
                "price": lease.price, "gpus": list(lease.gpus), "runtime": self.runtime.name, "services": services}

    # --- health, closing and earnings ------------------------------------------------------------------

    def check_health(self) -> None:
        """Close leases whose services ended or stopped answering on their port."""
        with self.lock:
            for lease in [lease for lease in self.leases.values() if lease.state == ACTIVE]:
                assert lease.workload is not None
                failure = first_failure(lease.workload.states())
                if failure is not None:
                    name, state = failure
                    code = REASON_FINISHED if state.state == EXITED else REASON_FAILED
                    self.metrics.failed.inc()
                    self.close_lease(lease.id, code, f"service {name} {state.detail or state.state}")
                    continue
                self._check_ports(lease)

    def _check_ports(self, lease: Lease) -> None:
        assert lease.workload is not None
        lease.health_checks += 1
        for name in lease.workload.states():
            address = lease.workload.endpoint(name)
            if address is None:
                continue
            if address.answers():
                lease.answered_once.add(name)
                lease.health_failures = 0
            elif name in lease.answered_once or lease.health_checks > STARTUP_GRACE_CHECKS:
                lease.health_failures += 1
                if lease.health_failures >= UNHEALTHY_CHECKS:
                    self.metrics.failed.inc()
                    self.close_lease(lease.id, REASON_UNHEALTHY, f"service {name} stopped accepting connections")
                    return

    def close_lease(self, lease_id: int, code: int, why: str) -> None:
        log.warning("Closing lease %d: %s (reason code %d).", lease_id, why, code)
        try:
            self._send(MsgCloseLease(lease_id, code))
        except ChainError as error:
            log.warning("The chain refused to close lease %d: %s", lease_id, error)
        self.stop_lease(lease_id, why)

    def stop_lease(self, lease_id: int, why: str) -> None:
        with self.lock:
            lease = self.leases.get(lease_id)
            if lease is None or lease.state == STOPPED:
                return
            # The proxy forwards until the workload is gone (a dying one answers 502), and says the lease is not
            # running (503) only once that is true.
            try:
                if lease.workload is not None:
                    lease.workload.stop()
                log.info("Lease %d stopped: %s.", lease_id, why)
            finally:
                lease.state, lease.reason = STOPPED, why
            self.inventory.release(f"lease:{lease_id}")
            self.metrics.leases.set(sum(lease.state != STOPPED for lease in self.leases.values()))

    def withdraw_all(self) -> int:
        total = 0
        for lease in [lease for lease in self.leases.values() if lease.state != STOPPED]:
            try:
                outcome = self._send(MsgWithdraw(lease.id))
            except ChainError as error:
                log.debug("Nothing withdrawn from lease %d: %s", lease.id, error)
                continue
            amount = int(outcome.attribute("withdrawn", "amount") or 0)
            total += amount
            self.metrics.withdrawn.inc(amount)
            log.info("Withdrew %s earned on lease %d.", format_mint(amount), lease.id)
        return total

    def shutdown(self) -> None:
        with self.lock:
            for lease_id, lease in list(self.leases.items()):
                if lease.state != STOPPED:
                    self.stop_lease(lease_id, "the provider daemon stopped")

    def running(self) -> list[Lease]:
        return [lease for lease in self.leases.values() if lease.state == ACTIVE]



