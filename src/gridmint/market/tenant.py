"""The tenant's side of the market: matching providers, the order → bids → lease → manifest steps, and the
signed calls to the provider that runs the lease.

The manifest of each order is kept in the tenant's deployments folder (``<order>.json``) between `deploy create`
and `deploy accept`, since only its hash is on chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gridmint.chain.crypto import PrivateKey, parse_address
from gridmint.chain.errors import ChainError, ErrorKind, lookup, register
from gridmint.chain.market import NOT_PROVIDER, MsgAcceptBid, MsgCreateDeployment, mismatch
from gridmint.chain.units import format_mint
from gridmint.client.chain_client import ChainClient, TxOutcome
from gridmint.client.errors import RPC_FAILED
from gridmint.client.signing import sign_request
from gridmint.market.deployment import Deployment

PROVIDER_UNREACHABLE = register("deploy", 3, "provider_unreachable")
NO_BIDS = register("deploy", 4, "no_bids")
NO_MANIFEST = register("deploy", 5, "no_manifest")
NOT_RUNNING_YET = register("deploy", 6, "not_running")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Match:
    provider: str  # gm1 address
    host_uri: str
    reason: str | None  # None: it can serve the deployment

    @property
    def fits(self) -> bool:
        return self.reason is None


def order_shape(deployment: Deployment) -> dict[str, Any]:
    """What the chain checks bids against, in the shape of an order."""
    return {"resources": {"cpu_millis": deployment.cpu_millis, "memory_mb": deployment.memory_mb,
                          "gpu_units": deployment.gpu_units, "gpu_models": deployment.gpu_models,
                          "min_vram_gb": deployment.min_vram_gb}}


def explain_match(providers: list[dict[str, Any]], deployment: Deployment) -> list[Match]:
    """Each provider (as `/market/providers` lists them) with None, or the first resource it lacks."""
    order = order_shape(deployment)
    return [Match(p["owner"], p["host_uri"], mismatch(p, order)) for p in providers]


# --- the steps on chain --------------------------------------------------------------------------------------


def _created(outcome: TxOutcome, name: str) -> int:
    """The id the transaction's message created, from its result data (what the handler answered)."""
    value = outcome.created().get(name)
    if value is None:
        raise RPC_FAILED(f"the result of transaction {outcome.hash} names no {name}; the node may run an older "
                         "chain whose results carry no data")
    return value


def create_order(client: ChainClient, key: PrivateKey, deployment: Deployment) -> tuple[int, int]:
    """Put the deployment on chain; returns (order id, block height)."""
    outcome = client.execute(key, [MsgCreateDeployment(
        deployment.cpu_millis, deployment.memory_mb, deployment.gpu_units, deployment.gpu_models,
        deployment.min_vram_gb, deployment.max_price, deployment.manifest_hash, deployment.deposit)])
    return _created(outcome, "order"), outcome.height


def describe_hold(order: dict[str, Any]) -> str:
    """What an order's hold deposit (as `/market/order/<id>` shows it) means for the tenant who put it up."""
    hold, per_bid = int(order.get("hold", 0)), int(order.get("hold_per_bid", 0))
    if not hold:
        return "no hold deposit"
    return (f"hold deposit {format_mint(hold)}, back in full when a lease starts; if the order ends without one, "
            f"each bidder is paid {format_mint(per_bid)} of it for the capacity it kept free, and the rest comes back")


def wait_for_bids(client: ChainClient, order_id: int, expected: int, wait_s: float,
                  progress: Progress = lambda _: None) -> list[dict[str, Any]]:
    """The order's bids once ``expected`` providers have bid or ``wait_s`` has passed, cheapest first."""
    deadline, seen = time.monotonic() + wait_s, -1
    while True:
        bids = client.query(f"/market/order/{order_id}")["bids"]
        if len(bids) != seen:
            seen = len(bids)
            progress(f"{seen} bid{'s' if seen != 1 else ''} on order {order_id}")
        if len(bids) >= expected or time.monotonic() >= deadline:
            return sorted(bids, key=lambda b: (int(b["price"]), int(b["created"])))
        time.sleep(0.2)


def accept_bid(client: ChainClient, key: PrivateKey, order_id: int, provider: str) -> int:
    """Accept ``provider``'s bid; returns the lease id."""
    outcome = client.execute(key, [MsgAcceptBid(order_id, parse_address(provider))])
    return _created(outcome, "lease")


def provider_uri(client: ChainClient, provider: str) -> str:
    for entry in client.query("/market/providers"):
        if entry["owner"] == provider:
            return str(entry["host_uri"])
    raise NOT_PROVIDER(f"{provider} is not a registered provider")


# --- the signed calls to the provider ------------------------------------------------------------------------


class ProviderClient:
    """A tenant's signed calls to one provider (``market/provider/api``)."""

    def __init__(self, key: PrivateKey, provider: str, host_uri: str, timeout_s: float = 30.0) -> None:
        self.key, self.provider, self.host_uri = key, provider, host_uri.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", **sign_request(self.key, self.provider, raw)}
        try:
            answer = self._http.post(f"{self.host_uri}/tenant/{op}", content=raw, headers=headers)
        except httpx.HTTPError as error:
            raise PROVIDER_UNREACHABLE(f"cannot reach the provider at {self.host_uri} "
                                       f"({error.__class__.__name__})") from None
        try:
            data = answer.json()
        except ValueError:
            raise PROVIDER_UNREACHABLE(f"the provider at {self.host_uri} answered {answer.status_code} "
                                       "without JSON") from None
        if answer.status_code != 200:
            detail = data.get("error", {}) if isinstance(data, dict) else {}
            module, _, code = str(detail.get("code", "provider/0")).partition("/")
            number = int(code) if code.isdigit() else 0
            kind = lookup(module, number) or ErrorKind(module, number, str(detail.get("name")))
            raise ChainError(kind, str(detail.get("message", f"HTTP {answer.status_code}")))
        return dict(data)

    def send_manifest(self, lease_id: int, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.call("manifest", {"lease": lease_id, "manifest": manifest})

    def status(self, lease_id: int) -> dict[str, Any]:
        return self.call("status", {"lease": lease_id})

    def logs(self, lease_id: int, tail: int = 200) -> str:
        return str(self.call("logs", {"lease": lease_id, "tail": tail})["logs"])


def for_lease(client: ChainClient, key: PrivateKey, lease_id: int) -> ProviderClient:
    """The client for whoever runs ``lease_id``, from the chain's record of it."""
    lease = client.query(f"/market/lease/{lease_id}")
    return ProviderClient(key, lease["provider"], provider_uri(client, lease["provider"]))


def wait_running(provider: ProviderClient, lease_id: int, timeout_s: float) -> dict[str, Any]:
    """The lease's status once every service runs and accepts connections; raises if that takes too long."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = provider.status(lease_id)
        services = list(status["services"].values())
        if status["state"] == "running" and services and all(s["ready"] for s in services):
            return status
        if status["state"] == "stopped" or time.monotonic() >= deadline:
            raise NOT_RUNNING_YET(f"lease {lease_id} is {status['state']} {status.get('reason', '')}".strip())
        time.sleep(0.2)


# --- the tenant's own record of its orders -------------------------------------------------------------------


def save_manifest(folder: Path, order_id: int, manifest: dict[str, Any], source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{order_id}.json"
    path.write_text(json.dumps({"order": order_id, "source": source, "manifest": manifest}, indent=2))
    return path


def load_manifest(folder: Path, order_id: int) -> dict[str, Any]:
    path = folder / f"{order_id}.json"
    try:
        return dict(json.loads(path.read_text())["manifest"])
    except (OSError, ValueError, KeyError):
        raise NO_MANIFEST(f"no manifest saved for order {order_id} in {folder}; pass the deployment file "
                          "with --file") from None

