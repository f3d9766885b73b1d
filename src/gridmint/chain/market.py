"""market: providers, deployments (orders), bids and leases. Payments run through ``escrow``.

- A **provider** registers its host URI and attributes (GPU model, count, VRAM, CPU, memory, storage, region,
  tags) with a bond held by the market.
- A **tenant** creates a deployment: the resources it needs, a max price per block, the manifest's hash and a
  deposit (held by the market). That opens an order, which expires after ``order_ttl`` blocks without a lease.
- With it the tenant puts up a **hold deposit** for the capacity it asks bidders to keep free: ``hold_per_bid =
  hold_fee × resource units × order_ttl`` for each of the ``max_bids`` bids the order may draw. Resource units
  weigh what a provider keeps free, roughly as cloud prices rank it: ``8·cpu_millis + memory_mb +
  400,000·gpu_units + 1,024`` (a CPU weighs as much as 8,000 MB of memory, a GPU as 50 CPUs, and every order at
  least 1,024, so one that asks for nothing still pays for the bid transactions it draws). A balance that cannot
  cover deposit and hold is refused (``bank/insufficient_funds``).
- Registered providers whose attributes match **bid** (price ≤ max, one bid per provider, at most ``max_bids``),
  each with ``bid_deposit`` held until the order ends.
- The tenant **accepts** a bid: the deposit moves into an escrow stream at the bid's price, the hold deposit and
  every bid deposit are returned, and the lease begins. Tenant or provider closes it (the provider gives a reason
  code); the chain closes it in the block where the escrow runs dry. A lease is open exactly while its escrow
  account is.
- An order that **expires or is closed** without a lease returns the deposit and the bid deposits, and pays each
  bidder ``hold_per_bid`` from the hold deposit (for the capacity it kept free and the bid it paid for); the rest
  of the hold (all of it when nobody bid, since nobody kept anything free) comes back to the tenant. An order
  that draws N bids and no lease thus costs its sender N × ``hold_per_bid``. ``hold_fee`` is 1 grain by default
  (0 turns the hold off); ``/market/order/<id>`` shows ``hold``, ``hold_per_bid`` and ``hold_paid`` (to bidders).

State: ``market/provider/<owner 20B>``, ``market/order/<id 8B>``, ``market/bid/<order 8B><provider 20B>``,
``market/lease/<escrow id 8B>``, ``market/order_due/<expiry block 8B><order 8B>``, ``market/next_order``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from gridmint.chain import bank, escrow
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import INVALID_FIELD, register
from gridmint.chain.fields import U16, U64, Address, Amount, Bytes32, text, text_list
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.module_genesis import ModuleGenesis
from gridmint.chain.params import params_reader
from gridmint.chain.query_args import expect_args, parse_choice, parse_id
from gridmint.chain.records import ADDRESS, BYTES, INT, LIST, MAP, STR, RecordKind
from gridmint.chain.state import Reader, State
from gridmint.chain.tx import Msg, message
from gridmint.chain.units import GRAINS_PER_MINT, MAX_U64, format_mint

NAME = "market"

NOT_PROVIDER = register(NAME, 1, "not_provider")
NO_ORDER = register(NAME, 2, "no_order")
ORDER_NOT_OPEN = register(NAME, 3, "order_not_open")
BID_ABOVE_MAX = register(NAME, 4, "bid_above_max")
RESOURCES_MISMATCH = register(NAME, 5, "resources_mismatch")
TOO_MANY_BIDS = register(NAME, 6, "too_many_bids")
ALREADY_BID = register(NAME, 7, "already_bid")
NOT_TENANT = register(NAME, 8, "not_tenant")
NO_BID = register(NAME, 9, "no_bid")
NO_LEASE = register(NAME, 10, "no_lease")
NOT_PARTY = register(NAME, 11, "not_party")
BOND_TOO_LOW = register(NAME, 12, "bond_too_low")
DEPOSIT_TOO_LOW = register(NAME, 13, "deposit_too_low")


@dataclass(frozen=True)
class Params:
    min_bond: int = 10 * GRAINS_PER_MINT
    bid_deposit: int = GRAINS_PER_MINT // 10
    max_bids: int = 20
    order_ttl: int = 600  # blocks an order stays open without a lease
    # Grains per resource unit per block of order_ttl that each bidder is paid when an order ends without a lease.
    # At 1, a bidder on a 0.5-CPU, 256 MB order is paid 5,280 × 600 = 3.2 M grains (0.0032 MINT), ~60 bid fees.
    hold_fee: int = 1
    # Orders end_block expires at most per block, counted with their bids (an order with 20 bids counts 21): each
    # bid is a refund, and orders made together fall due together. The block reserves the work (chain/fees.py).
    expiries_per_block: int = 500


BOUNDS = {"min_bond": (0, MAX_U64), "bid_deposit": (0, MAX_U64), "max_bids": (1, 1_000),
          "order_ttl": (1, 10_000_000), "hold_fee": (0, GRAINS_PER_MINT), "expiries_per_block": (1, 1_000)}

PARAMS_KEY = b"market/params"
PROVIDER_PREFIX = b"market/provider/"
ORDER_PREFIX = b"market/order/"
BID_PREFIX = b"market/bid/"
LEASE_PREFIX = b"market/lease/"
ORDER_DUE_PREFIX = b"market/order_due/"
NEXT_ORDER_KEY = b"market/next_order"

RESOURCE_FIELDS = ("cpu_millis", "memory_mb", "gpu_units", "min_vram_gb")

# Resource units (see the module's text): 1 MB of memory is one, a CPU (1,000 millis) 8,000, as a CPU rents for
# about what 8 GB does; a GPU 400,000 (50 CPUs, between a T4 and an A100 in cloud prices). Every order counts
# ORDER_BASE_UNITS more: at the default fees a bid transaction costs 50,000 grains, the base alone pays a bidder
# 1,024 × order_ttl × hold_fee = 614,400.
UNITS_PER_CPU_MILLI = 8
UNITS_PER_MEMORY_MB = 1
UNITS_PER_GPU = 400_000
ORDER_BASE_UNITS = 1_024


get_params = params_reader(PARAMS_KEY, Params)


def compute_resource_units(cpu_millis: int, memory_mb: int, gpu_units: int) -> int:
    return (ORDER_BASE_UNITS + UNITS_PER_CPU_MILLI * cpu_millis + UNITS_PER_MEMORY_MB * memory_mb
            + UNITS_PER_GPU * gpu_units)


def compute_hold(params: Params, cpu_millis: int, memory_mb: int, gpu_units: int) -> tuple[int, int]:
    """(what each bidder is paid if the order ends without a lease, the hold deposit: that for ``max_bids``
    bids). Integers only; the order records both, so later parameter changes do not alter an open order."""
    per_bid = params.hold_fee * compute_resource_units(cpu_millis, memory_mb, gpu_units) * params.order_ttl
    return per_bid, per_bid * params.max_bids


def _id(number: int) -> bytes:
    return number.to_bytes(8, "big")


def get_order(state: Reader, order_id: int) -> dict[str, Any]:
    order = state.get_value(ORDER_PREFIX + _id(order_id))
    if order is None:
        raise NO_ORDER(f"order {order_id} does not exist")
    return dict(order)


def bids_of(state: Reader, order_id: int) -> list[tuple[bytes, dict[str, Any]]]:
    return list(state.scan_values(BID_PREFIX + _id(order_id)))


def mismatch(provider: dict[str, Any], order: dict[str, Any]) -> str | None:
    """Why ``provider`` cannot serve ``order``, or None if it can (also what `gridmint market match` shows)."""
    need, have = order["resources"], provider
    if have["cpu_millis"] < need["cpu_millis"]:
        return f"CPU {have['cpu_millis']}m < {need['cpu_millis']}m needed"
    if have["memory_mb"] < need["memory_mb"]:
        return f"memory {have['memory_mb']} MB < {need['memory_mb']} MB needed"
    if need["gpu_units"]:
        if have["gpu_count"] < need["gpu_units"]:
            return f"{have['gpu_count']} GPUs < {need['gpu_units']} needed"
        if need["gpu_models"] and have["gpu_model"].lower() not in [m.lower() for m in need["gpu_models"]]:
            return f"GPU {have['gpu_model']} is not among {', '.join(need['gpu_models'])}"
        if have["vram_gb"] < need["min_vram_gb"]:
            return f"VRAM {have['vram_gb']} GB < {need['min_vram_gb']} GB needed"
    return None


# --- events ----------------------------------------------------------------------------------------------


@event("provider_registered")
class ProviderRegistered(EventData):
    """A provider registered, or updated its offer."""

    provider: str
    host: str
    gpus: int


@event("order_created")
class OrderCreated(EventData):
    """A tenant's deployment opened an order."""

    order: int
    tenant: str
    max_price: int
    hold: int


@event("bid")
class Bid(EventData):
    """A provider bid on an order."""

    order: int
    provider: str
    price: int


@event("lease_started")
class LeaseStarted(EventData):
    """A tenant accepted a bid: a lease runs."""

    lease: int
    order: int
    provider: str
    price: int
    hold_returned: int


@event("lease_closed")
class LeaseClosed(EventData):
    """A lease ended by its tenant or provider."""

    lease: int
    reason: str
    paid: int
    refunded: int


@event("withdrawn")
class Withdrawn(EventData):
    """A provider withdrew what a lease has paid."""

    lease: int
    amount: int


@event("topped_up")
class ToppedUp(EventData):
    """A tenant added funds to a lease."""

    lease: int
    amount: int


@event("order_closed")
class OrderClosed(EventData):
    """A tenant closed an order."""

    order: int
    hold_paid: int
    hold_returned: int


@event("order_expired")
class OrderExpired(EventData):
    """An order expired without a lease."""

    order: int
    hold_paid: int
    hold_returned: int


# --- messages ----------------------------------------------------------------------------------------------


@message("market/register_provider")
class MsgRegisterProvider(Msg):
    host_uri: Annotated[str, text(256)]
    gpu_model: Annotated[str, text(64)]
    gpu_count: U16
    vram_gb: U16
    cpu_millis: U64
    memory_mb: U64
    storage_mb: U64
    region: Annotated[str, text(64)]
    tags: Annotated[list[str], text_list(16, 64)]
    bond: U64


@message("market/create_deployment")
class MsgCreateDeployment(Msg):
    cpu_millis: U64
    memory_mb: U64
    gpu_units: U16
    gpu_models: Annotated[list[str], text_list(16, 64)]
    min_vram_gb: U16
    max_price: Amount
    manifest_hash: Bytes32
    deposit: Amount


@message("market/bid")
class MsgBid(Msg):
    order_id: U64
    price: Amount


@message("market/accept_bid")
class MsgAcceptBid(Msg):
    order_id: U64
    provider: Address


@message("market/close_lease")
class MsgCloseLease(Msg):
    lease_id: U64
    reason: U16  # the provider's reason code (0 when the tenant closes)


@message("market/withdraw")
class MsgWithdraw(Msg):
    lease_id: U64


@message("market/top_up")
class MsgTopUp(Msg):
    lease_id: U64
    amount: Amount


@message("market/close_deployment")
class MsgCloseDeployment(Msg):
    order_id: U64


def process_register_provider(ctx: Context, msg: MsgRegisterProvider) -> None:
    params = get_params(ctx.state)
    key = PROVIDER_PREFIX + ctx.signer
    previous = ctx.state.get_value(key)
    held = int(previous["bond"]) if previous else 0
    if msg.bond < params.min_bond:
        raise BOND_TOO_LOW(f"a provider's bond is at least {format_mint(params.min_bond)}")
    if not msg.host_uri.startswith(("http://", "https://")):
        raise INVALID_FIELD("host_uri: expected an http(s):// address where tenants reach the provider")
    if msg.bond > held:
        bank.hold(ctx.state, ctx.signer, NAME, msg.bond - held, "the provider bond")
    elif msg.bond < held:
        bank.release(ctx.state, NAME, ctx.signer, held - msg.bond)
    ctx.state.set_value(key, {
        "host_uri": msg.host_uri, "gpu_model": msg.gpu_model, "gpu_count": msg.gpu_count, "vram_gb": msg.vram_gb,
        "cpu_millis": msg.cpu_millis, "memory_mb": msg.memory_mb, "storage_mb": msg.storage_mb,
        "region": msg.region, "tags": msg.tags, "bond": msg.bond})
    ctx.emit(ProviderRegistered(provider=format_address(ctx.signer), host=msg.host_uri, gpus=msg.gpu_count))


def process_create_deployment(ctx: Context, msg: MsgCreateDeployment) -> dict[str, int]:
    if msg.deposit < msg.max_price:
        raise DEPOSIT_TOO_LOW(f"the deposit {format_mint(msg.deposit)} does not cover one block at the max price "
                              f"{format_mint(msg.max_price)}")
    params = get_params(ctx.state)
    hold_per_bid, hold = compute_hold(params, msg.cpu_millis, msg.memory_mb, msg.gpu_units)
    bank.hold(ctx.state, ctx.signer, NAME, msg.deposit + hold,
              f"a deposit of {format_mint(msg.deposit)} and a hold deposit of {format_mint(hold)} "
              f"({params.max_bids} bids × {format_mint(hold_per_bid)}, returned when a lease starts)")
    order_id = ctx.state.get_int(NEXT_ORDER_KEY) + 1
    ctx.state.set_int(NEXT_ORDER_KEY, order_id)
    expires = ctx.block.height + params.order_ttl
    ctx.state.set_value(ORDER_PREFIX + _id(order_id), {
        "tenant": ctx.signer, "state": "open", "created": ctx.block.height, "expires": expires,
        "resources": {"cpu_millis": msg.cpu_millis, "memory_mb": msg.memory_mb, "gpu_units": msg.gpu_units,
                      "gpu_models": msg.gpu_models, "min_vram_gb": msg.min_vram_gb},
        "max_price": msg.max_price, "manifest_hash": msg.manifest_hash, "deposit": msg.deposit, "lease": 0,
        "hold": hold, "hold_per_bid": hold_per_bid, "hold_paid": 0})
    ctx.state.set(ORDER_DUE_PREFIX + _id(expires) + _id(order_id), b"")
    ctx.emit(OrderCreated(order=order_id, tenant=format_address(ctx.signer), max_price=msg.max_price,
             hold=hold))
    return {"order": order_id}


def _open_order(state: State, order_id: int, height: int) -> dict[str, Any]:
    """An open order; one past its expiry block counts as expired even while end_block has yet to reach it."""
    order = get_order(state, order_id)
    if order["state"] != "open":
        raise ORDER_NOT_OPEN(f"order {order_id} is {order['state']}; it takes no bids and no acceptance")
    if order["expires"] < height:
        raise ORDER_NOT_OPEN(f"order {order_id} expired at block {order['expires']}; it takes no bids and no "
                             "acceptance")
    return order


def process_bid(ctx: Context, msg: MsgBid) -> None:
    provider = ctx.state.get_value(PROVIDER_PREFIX + ctx.signer)
    if provider is None:
        raise NOT_PROVIDER(f"{format_address(ctx.signer)} is not a registered provider")
    order = _open_order(ctx.state, msg.order_id, ctx.block.height)
    if msg.price > order["max_price"]:
        raise BID_ABOVE_MAX(f"bid {format_mint(msg.price)} per block is above the order's max "
                            f"{format_mint(order['max_price'])}")
    reason = mismatch(provider, order)
    if reason is not None:
        raise RESOURCES_MISMATCH(f"this provider cannot serve order {msg.order_id}: {reason}")
    params = get_params(ctx.state)
    key = BID_PREFIX + _id(msg.order_id) + ctx.signer
    if ctx.state.get(key) is not None:
        raise ALREADY_BID(f"{format_address(ctx.signer)} already bid on order {msg.order_id}")
    if len(bids_of(ctx.state, msg.order_id)) >= params.max_bids:
        raise TOO_MANY_BIDS(f"order {msg.order_id} already has {params.max_bids} bids")
    if params.bid_deposit:
        bank.hold(ctx.state, ctx.signer, NAME, params.bid_deposit, "the bid deposit")
    ctx.state.set_value(key, {"price": msg.price, "deposit": params.bid_deposit, "created": ctx.block.height})
    ctx.emit(Bid(order=msg.order_id, provider=format_address(ctx.signer), price=msg.price))


def _hold_of(order: dict[str, Any]) -> int:
    return int(order.get("hold", 0))  # orders created before the hold deposit existed hold none


def _settle_bids(state: State, order_id: int, per_bid: int, pot: int) -> int:
    """Return every bid deposit with up to ``per_bid`` of the order's hold deposit (``pot`` grains) on top, in
    the bids' key order while the pot lasts (it always does unless max_bids was raised after the order); the bids
    are deleted. Returns what was paid from the pot. One release per bid: the work its bid fee prepaid."""
    paid = 0
    for provider, bid in bids_of(state, order_id):
        share = min(per_bid, pot - paid)
        paid += share
        if bid["deposit"] + share:
            bank.release(state, NAME, provider, bid["deposit"] + share)
        state.delete(BID_PREFIX + _id(order_id) + provider)
    return paid


def process_accept(ctx: Context, msg: MsgAcceptBid) -> dict[str, int]:
    order = _open_order(ctx.state, msg.order_id, ctx.block.height)
    if order["tenant"] != ctx.signer:
        raise NOT_TENANT(f"order {msg.order_id} belongs to {format_address(order['tenant'])}")
    provider = msg.provider
    bid = ctx.state.get_value(BID_PREFIX + _id(msg.order_id) + provider)
    if bid is None:
        raise NO_BID(f"{format_address(provider)} has no bid on order {msg.order_id}")
    lease_id = escrow.open_account(ctx.state, NAME, ctx.signer, provider, bid["price"], order["deposit"],
                                   ctx.block.height)
    _settle_bids(ctx.state, msg.order_id, 0, 0)
    hold = _hold_of(order)
    if hold:  # an order that found its lease cost its tenant nothing for the capacity it asked to be kept free
        bank.release(ctx.state, NAME, ctx.signer, hold)
    ctx.state.delete(ORDER_DUE_PREFIX + _id(order["expires"]) + _id(msg.order_id))
    order.update(state="leased", lease=lease_id)
    ctx.state.set_value(ORDER_PREFIX + _id(msg.order_id), order)
    ctx.state.set_value(LEASE_PREFIX + _id(lease_id), {"order": msg.order_id, "tenant": ctx.signer,
                                                        "provider": provider, "price": bid["price"]})
    ctx.emit(LeaseStarted(lease=lease_id, order=msg.order_id, provider=format_address(provider),
             price=bid["price"], hold_returned=hold))
    return {"lease": lease_id}


def get_lease(state: Reader, lease_id: int) -> dict[str, Any]:
    lease = state.get_value(LEASE_PREFIX + _id(lease_id))
    if lease is None:
        raise NO_LEASE(f"lease {lease_id} does not exist")
    return dict(lease)


def process_close_lease(ctx: Context, msg: MsgCloseLease) -> None:
    lease = get_lease(ctx.state, msg.lease_id)
    if ctx.signer == lease["tenant"]:
        reason = "closed by the tenant"
    elif ctx.signer == lease["provider"]:
        reason = f"closed by the provider (code {msg.reason})"
    else:
        raise NOT_PARTY(f"only the tenant or the provider of lease {msg.lease_id} may close it")
    paid, refunded = escrow.close(ctx.state, msg.lease_id, ctx.block.height, reason)
    ctx.emit(LeaseClosed(lease=msg.lease_id, reason=reason, paid=paid, refunded=refunded))


def process_withdraw(ctx: Context, msg: MsgWithdraw) -> None:
    lease = get_lease(ctx.state, msg.lease_id)
    if ctx.signer != lease["provider"]:
        raise NOT_PARTY(f"only the provider of lease {msg.lease_id} withdraws its earnings")
    paid = escrow.withdraw(ctx.state, msg.lease_id, ctx.block.height)
    ctx.emit(Withdrawn(lease=msg.lease_id, amount=paid))


def process_top_up(ctx: Context, msg: MsgTopUp) -> None:
    lease = get_lease(ctx.state, msg.lease_id)
    if ctx.signer != lease["tenant"]:
        raise NOT_PARTY(f"only the tenant of lease {msg.lease_id} tops it up")
    escrow.top_up(ctx.state, msg.lease_id, ctx.signer, msg.amount, ctx.block.height)
    ctx.emit(ToppedUp(lease=msg.lease_id, amount=msg.amount))


def _end_order(state: State, order_id: int, order: dict[str, Any], new_state: str) -> tuple[int, int]:
    """End an order without a lease: the bidders are paid from its hold deposit and the tenant gets the rest back
    with the deposit. Returns (hold paid to bidders, hold returned to the tenant)."""
    hold = _hold_of(order)
    paid = _settle_bids(state, order_id, int(order.get("hold_per_bid", 0)), hold)
    bank.release(state, NAME, order["tenant"], order["deposit"] + hold - paid)
    state.delete(ORDER_DUE_PREFIX + _id(order["expires"]) + _id(order_id))
    order.update(state=new_state, hold_paid=paid)
    state.set_value(ORDER_PREFIX + _id(order_id), order)
    return paid, hold - paid


def process_close_deployment(ctx: Context, msg: MsgCloseDeployment) -> None:
    order = _open_order(ctx.state, msg.order_id, ctx.block.height)
    if order["tenant"] != ctx.signer:
        raise NOT_TENANT(f"order {msg.order_id} belongs to {format_address(order['tenant'])}")
    paid, returned = _end_order(ctx.state, msg.order_id, order, "closed")
    ctx.emit(OrderClosed(order=msg.order_id, hold_paid=paid, hold_returned=returned))


def _due_orders(state: Reader, height: int, limit: int) -> list[tuple[bytes, Any]]:
    return list(state.scan(ORDER_DUE_PREFIX, below=ORDER_DUE_PREFIX + _id(height + 1), limit=limit))


def has_due_orders(state: Reader, height: int) -> bool:
    """Whether end_block of block ``height`` expires orders (the block then reserves the work: chain/fees.py)."""
    return bool(_due_orders(state, height, 1))


def end_block(ctx: Context) -> None:
    """Expire orders that found no lease in time, the earliest due first, while what they count (each order one,
    each of its bids one more) stays within ``expiries_per_block``; the first always goes, and the rest wait for the
    next block. Only due entries are read. A late expiry pays exactly what an on-time one would, and an order past
    its expiry block takes no bids, acceptance or close in the meantime (``_open_order``)."""
    if not has_due_orders(ctx.state, ctx.block.height):  # most blocks: one key looked for, no parameters read
        return
    budget = get_params(ctx.state).expiries_per_block
    counted = 0
    for key, _ in _due_orders(ctx.state, ctx.block.height, budget):
        order_id = int.from_bytes(key[-8:], "big")
        bids = len(bids_of(ctx.state, order_id))
        if counted and counted + 1 + bids > budget:
            return
        counted += 1 + bids
        paid, returned = _end_order(ctx.state, order_id, get_order(ctx.state, order_id), "expired")
        ctx.emit(OrderExpired(order=order_id, hold_paid=paid, hold_returned=returned))


# --- queries, genesis, invariants --------------------------------------------------------------------------


def _order_json(order_id: int, order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "id": order_id, "tenant": format_address(order["tenant"]),
            "manifest_hash": order["manifest_hash"].hex()}


ORDER_STATES = ("open", "leased", "closed", "expired")  # what /market/orders can filter by (its data)


def query_providers(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/market/providers")
    return [{**p, "owner": format_address(owner)} for owner, p in state.scan_values(PROVIDER_PREFIX)]


def query_orders(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/market/orders")
    wanted = parse_choice(data, ORDER_STATES)  # e.g. "open"; empty for every order
    return [_order_json(int.from_bytes(key, "big"), order) for key, order in state.scan_values(ORDER_PREFIX)
            if wanted is None or order["state"] == wanted]


def query_order(state: Reader, parts: list[str], data: bytes) -> Any:
    (arg,) = expect_args(parts, 1, "/market/order/<id>")
    order_id = parse_id("order id", arg)
    return {**_order_json(order_id, get_order(state, order_id)),
            "bids": [{"provider": format_address(p), **b} for p, b in bids_of(state, order_id)]}


def query_lease(state: Reader, parts: list[str], data: bytes) -> Any:
    (arg,) = expect_args(parts, 1, "/market/lease/<id>")
    lease_id = parse_id("lease id", arg)
    lease = get_lease(state, lease_id)
    account = escrow.query_account(state, [arg], b"")
    return {**lease, "id": lease_id, "tenant": format_address(lease["tenant"]),
            "provider": format_address(lease["provider"]), "open": account["open"], "escrow": account}


RECORDS = (
    RecordKind(PROVIDER_PREFIX, 20, MAP(host_uri=STR, gpu_model=STR, gpu_count=INT, vram_gb=INT, cpu_millis=INT,
                                        memory_mb=INT, storage_mb=INT, region=STR, tags=LIST(STR), bond=INT)),
    RecordKind(ORDER_PREFIX, 8, MAP(tenant=ADDRESS, state=STR, created=INT, expires=INT,
                                    resources=MAP(cpu_millis=INT, memory_mb=INT, gpu_units=INT, gpu_models=LIST(STR),
                                                  min_vram_gb=INT),
                                    max_price=INT, manifest_hash=BYTES(32), deposit=INT, lease=INT, hold=INT,
                                    hold_per_bid=INT, hold_paid=INT)),
    RecordKind(BID_PREFIX, 28, MAP(price=INT, deposit=INT, created=INT)),  # <order 8B><provider 20B>
    RecordKind(LEASE_PREFIX, 8, MAP(order=INT, tenant=ADDRESS, provider=ADDRESS, price=INT)),
    RecordKind(ORDER_DUE_PREFIX, 16, None),
    RecordKind(NEXT_ORDER_KEY, 0, INT),
)
GENESIS = ModuleGenesis("market", Params, BOUNDS, PARAMS_KEY, RECORDS)


def invariant_held(state: Reader) -> str | None:
    bonds = sum(int(p["bond"]) for _, p in state.scan_values(PROVIDER_PREFIX))
    deposits = sum(int(o["deposit"]) + _hold_of(o) for _, o in state.scan_values(ORDER_PREFIX)
                   if o["state"] == "open")
    bids = sum(int(b["deposit"]) for _, b in state.scan_values(BID_PREFIX))
    held = bank.get_held(state, NAME)
    total = bonds + deposits + bids
    return None if total == held else (f"bonds + open deposits and hold deposits + bid deposits {total} != held by "
                                       f"market {held}")


MODULE = ModuleSpec(
    name=NAME,
    events=(ProviderRegistered, OrderCreated, Bid, LeaseStarted, LeaseClosed, Withdrawn, ToppedUp, OrderClosed,
            OrderExpired),
    handlers={MsgRegisterProvider: process_register_provider, MsgCreateDeployment: process_create_deployment,
              MsgBid: process_bid, MsgAcceptBid: process_accept, MsgCloseLease: process_close_lease,
              MsgWithdraw: process_withdraw, MsgTopUp: process_top_up, MsgCloseDeployment: process_close_deployment},
    end_block=end_block,
    queries={"providers": query_providers, "orders": query_orders, "order": query_order, "lease": query_lease,
             "params": GENESIS.query},
    validate_genesis=GENESIS.validate,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    invariants={"held": invariant_held},
)
