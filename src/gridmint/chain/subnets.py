"""subnets: create and dissolve subnets, tune their hyperparameters, register neurons, announce endpoints.

- **Lock.** Creating a subnet locks ``lock_cost`` grains, returned when the owner dissolves it. As in Bittensor,
  the cost doubles with each creation and then falls linearly, by ``last / lock_decay_period`` per block, all the
  way back to ``min_lock``: ``max(min_lock, 2·last − last·elapsed / period)``. It passes the last lock paid after
  one period and reaches ``min_lock`` after at most two, so a burst of creations (six create/dissolve pairs in
  one transaction move it from 1,000 to 64,000 MINT) leaves no lasting price: there is no ratchet at the last
  lock.
- **Registration.** A coldkey registers a hotkey for the current burn price, which is burned. Each registration
  multiplies the price by ``burn_multiplier`` (per mille); between registrations it halves every
  ``burn_half_life`` blocks (whole halvings by shifts, linear in between), within ``[burn_min, burn_max]``.
- **Pruning.** When all ``max_uids`` are taken, a new registration replaces the UID with the lowest emission
  among those past their ``immunity_period`` (ties: the oldest registration, then the lowest UID); its stake
  returns to its stakers. If every UID is immune, registration is refused.
- **Endpoints.** A registered hotkey announces its URL, models, price per 1k tokens and protocol version, at
  most once every ``serving_rate_limit`` blocks. The URL is read by ``endpoint_url`` and refused
  (``invalid_endpoint``) unless it is ``http``/``https``, an ASCII host, a port from 1 to 65,535, at most a path (no
  userinfo, query or fragment) and at most ``MAX_URL_BYTES`` (256) bytes. A price is at most ``max_price_per_1k``
  (chain-wide; above it the announcement is refused with ``price_above_limit``), so no routed request can bill more
  than that bound allows.
  A price **raise** takes effect ``price_notice`` blocks after its announcement: the endpoint keeps the price in
  force in ``price_per_1k`` and holds the raise in ``next_price_per_1k`` from block ``next_price_at`` (0 and 0:
  none pending), so a gateway routing on what it read a moment ago is never billed a sudden re-price; announcing
  the pending price again keeps its date. A cut (or no change) takes effect at once and drops a pending raise.
  ``effective_price(endpoint, height)`` is the one function everyone (chain, gateway, explorer) reads prices with.
- **Epoch cost bounds.** A subnet's epoch (chain/yuma.py) costs about one dense validators × UIDs matrix, its
  *cells*: ``compute_epoch_cells`` = min(max_validators, UIDs) × UIDs + UIDs + ``EPOCH_OVERHEAD_CELLS``. Three
  rules keep the end-block work of every block bounded, whatever owners choose:
  1. caps: ``max_uids`` ≤ 4,096 and ``max_validators`` ≤ 256, Bittensor's upper values. One epoch at both caps is
     1,069,056 cells; bench/yuma_epoch.py measures its Yuma math at 80–100 ms on the 2-core reference machine
     and bench/adversarial_block.py the whole epoch with its state reads and writes (see bench/README.md).
  2. a per-block budget: end_block runs the epochs that are due, the longest-due first (then the lower netuid),
     while their cells fit in ``epoch_budget`` (default 1,069,056: one epoch at the caps); the first due epoch
     always runs, later ones wait for the next block. So no block runs more than one worst-case epoch, or
     ``epoch_budget / EPOCH_OVERHEAD_CELLS`` (64) small ones.
  3. a rate rule, so the budget keeps up: each subnet may ask for at most its share of it per block,
     ``cells / tempo ≤ epoch_budget / max_subnets`` (checked on every change of tempo, max_uids or
     max_validators and on the genesis defaults; refused with ``epoch_too_costly``). Summed over at most
     ``max_subnets`` subnets the demand never exceeds the budget, so epochs keep their tempo. Whatever happens,
     every subnet gets its epoch within ``tempo + subnets − 1`` blocks: each block runs at least the longest-due
     epoch, and each other subnet can be ahead of a waiting one at most once (its next epoch falls due later).
     At the default ``max_subnets`` of 128 a subnet at both caps needs a tempo of at least 130 (Bittensor runs
     360); the default shape (256 UIDs, 64 validators) may use tempo 5 and up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Any

import numpy as np

from gridmint.chain import bank, codec, neurons, staking
from gridmint.chain.crypto import format_address
from gridmint.chain.endpoint_url import parse_endpoint_url
from gridmint.chain.errors import INVALID_FIELD, INVALID_GENESIS, UNKNOWN_QUERY, ChainError
from gridmint.chain.fields import U16, U64, Address, text, text_list
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.module_genesis import ModuleGenesis, SectionState
from gridmint.chain.params import params_reader, params_to_json
from gridmint.chain.query_args import expect_args, parse_address_arg, parse_netuid, parse_options
from gridmint.chain.records import ADDRESS, BYTES, DICT, INT, LIST, MAP, ONE_OF, STR, RecordKind
from gridmint.chain.state import Reader
from gridmint.chain.subnets_errors import (
    BURN_ABOVE_LIMIT,
    EPOCH_TOO_COSTLY,
    HOTKEY_OWNED,
    HOTKEY_REGISTERED,
    INVALID_ENDPOINT,
    INVALID_MODALITY,
    NOT_OWNER,
    PARAM_OUT_OF_BOUNDS,
    PRICE_ABOVE_LIMIT,
    RATE_LIMITED,
    SUBNET_FULL,
    TOO_MANY_SUBNETS,
    UNKNOWN_PARAM,
)
from gridmint.chain.tx import Msg, message
from gridmint.chain.units import GRAINS_PER_MINT, MAX_U64, format_mint

NAME = "subnets"

MODALITY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")
MAX_URL_BYTES = 256
MAX_MODELS = 8

# --- parameters --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """Chain-wide: what subnets cost and the hyperparameters a new subnet starts with."""

    min_lock: int = 1_000 * GRAINS_PER_MINT
    lock_decay_period: int = 100_800  # blocks (14 days of 12 s blocks)
    max_subnets: int = 128
    default_tempo: int = 360  # the devnode's dev genesis sets a small one
    epoch_budget: int = 1_069_056  # epoch cells end_block may run per block (one epoch at the caps)
    max_price_per_1k: int = 1_000 * GRAINS_PER_MINT  # grains per 1k tokens an endpoint may announce at most
    price_notice: int = 20  # blocks between a price raise's announcement and its taking effect


MAX_UIDS_CAP = 4_096
MAX_VALIDATORS_CAP = 256
EPOCH_OVERHEAD_CELLS = 16_384  # what an epoch costs beyond its matrix: about 1.5 ms of reads, writes and payouts
BOUNDS = {"min_lock": (0, MAX_U64), "lock_decay_period": (1, 10_000_000), "max_subnets": (1, 1_024),
          "default_tempo": (2, 50_400), "epoch_budget": (1_069_056, 4 * 1_069_056),  # a worst-case epoch always fits
          "max_price_per_1k": (1, 2**63 - 1),  # a price always fits a signed 64-bit integer (SQLite, say)
          "price_notice": (1, 10_000_000)}


@dataclass(frozen=True)
class Hyperparams:
    """Owner-tunable, per subnet. Ratios are u16 out of 65535 unless named otherwise."""

    tempo: int = 360  # blocks between epochs
    kappa: int = 32_767  # share of active stake that defines consensus (about half)
    immunity_period: int = 5_000  # blocks a new UID cannot be pruned
    max_uids: int = 256
    max_validators: int = 64
    activity_cutoff: int = 5_000  # blocks without weights after which a UID is inactive
    min_allowed_weights: int = 1
    max_weight_limit: int = 65_535  # the largest share of a weight vector one UID may get
    weights_rate_limit: int = 100  # blocks between set_weights (commit-reveal off)
    commit_reveal: int = 1  # 1: weights are committed and revealed; 0: set in the clear
    reveal_period: int = 1  # epochs between a commit and its reveal
    bonds_alpha: int = 6_554  # bonds' moving average rate (about a tenth)
    burn_initial: int = GRAINS_PER_MINT  # registration price of a new subnet
    burn_min: int = GRAINS_PER_MINT // 1_000
    burn_max: int = 100 * GRAINS_PER_MINT
    burn_multiplier: int = 1_260  # per mille: each registration multiplies the price by 1260/1000
    burn_half_life: int = 360  # blocks
    serving_rate_limit: int = 50  # blocks between endpoint announcements


HYPERPARAM_BOUNDS = {
    "tempo": (2, 50_400), "kappa": (0, 65_535), "immunity_period": (0, 10_000_000), "max_uids": (1, MAX_UIDS_CAP),
    "max_validators": (1, MAX_VALIDATORS_CAP), "activity_cutoff": (1, 10_000_000), "min_allowed_weights": (0, 4_096),
    "max_weight_limit": (1, 65_535), "weights_rate_limit": (0, 10_000_000), "commit_reveal": (0, 1),
    "reveal_period": (1, 100), "bonds_alpha": (655, 65_535), "burn_initial": (0, MAX_U64), "burn_min": (0, MAX_U64),
    "burn_max": (0, MAX_U64), "burn_multiplier": (1_000, 10_000), "burn_half_life": (1, 10_000_000),
    "serving_rate_limit": (0, 10_000_000),
}
HYPERPARAM_NAMES = tuple(field.name for field in fields(Hyperparams))
EPOCH_SHAPE_PARAMS = ("tempo", "max_uids", "max_validators")  # the ones that set what epochs cost

# --- state -------------------------------------------------------------------------------------------------
# subnets/params         -> Params
# subnets/next_netuid    -> int
# subnets/last_lock      -> {"amount": grains, "block": height}
# subnets/raise/<netuid>  -> int, a max_uids raise that takes effect at the end of the block that set it
# and the layout of neurons.py (subnets, UIDs, hotkeys, vectors, bonds, pending emission).

PARAMS_KEY = b"subnets/params"
NEXT_NETUID_KEY = b"subnets/next_netuid"
LAST_LOCK_KEY = b"subnets/last_lock"
RAISE_PREFIX = b"subnets/raise/"


get_params = params_reader(PARAMS_KEY, Params)


def get_hyperparams(subnet: dict[str, Any]) -> Hyperparams:
    return Hyperparams(**subnet["params"])


def compute_lock_cost(params: Params, last_amount: int, last_block: int, height: int) -> int:
    elapsed = min(max(height - last_block, 0), 2 * params.lock_decay_period)  # zero by then: nothing to add
    decayed = 2 * last_amount - last_amount * elapsed // params.lock_decay_period
    return max(params.min_lock, decayed)


def get_lock_cost(state: Reader, height: int) -> int:
    last = state.get_value(LAST_LOCK_KEY, {"amount": 0, "block": 0})
    return compute_lock_cost(get_params(state), last["amount"], last["block"], height)


def compute_epoch_cells(uids: int, max_validators: int) -> int:
    """What one epoch of a subnet with ``uids`` UIDs costs, in cells of its validators × UIDs matrix."""
    return min(max_validators, uids) * uids + uids + EPOCH_OVERHEAD_CELLS


def check_epoch_rate(params: Params, hyper: Hyperparams) -> None:
    """Refuse a shape whose epochs would take more than its share of the per-block epoch budget (see above)."""
    cells = compute_epoch_cells(hyper.max_uids, hyper.max_validators)
    if cells * params.max_subnets > params.epoch_budget * hyper.tempo:
        shortest = -(-cells * params.max_subnets // params.epoch_budget)
        raise EPOCH_TOO_COSTLY(
            f"an epoch of {hyper.max_uids} UIDs and {hyper.max_validators} validators every {hyper.tempo} blocks "
            f"takes more than a subnet's share of the epoch budget ({params.epoch_budget} cells per block over "
            f"{params.max_subnets} subnets); use a tempo of at least {shortest} or fewer UIDs or validators")


def compute_burn(base: int, since: int, hyper: Hyperparams) -> int:
    """The registration price ``since`` blocks after it was ``base``: halved per half-life, clamped."""
    halvings, rest = divmod(max(since, 0), hyper.burn_half_life)
    price = base >> min(halvings, 127)
    price -= price * rest // (2 * hyper.burn_half_life)  # linear between two halvings
    return min(max(price, hyper.burn_min), hyper.burn_max)


def get_burn(subnet: dict[str, Any], height: int) -> int:
    return compute_burn(subnet["burn"], height - subnet["burn_block"], get_hyperparams(subnet))


# --- events ----------------------------------------------------------------------------------------------


@event("subnet_created")
class SubnetCreated(EventData):
    """A subnet was created."""

    netuid: int
    owner: str
    modality: str
    lock: int


@event("subnet_param")
class SubnetParam(EventData):
    """A subnet's owner changed a hyperparameter."""

    netuid: int
    param: str
    value: int


@event("subnet_dissolved")
class SubnetDissolved(EventData):
    """A subnet was dissolved."""

    netuid: int
    returned: int
    burned_pending: int


@event("neuron_registered")
class NeuronRegistered(EventData):
    """A hotkey took a UID on a subnet."""

    netuid: int
    uid: int
    hotkey: str
    coldkey: str
    burn: int


@event("endpoint_announced")
class EndpointAnnounced(EventData):
    """A neuron announced where and what it serves."""

    netuid: int
    uid: int
    url: str
    price_per_1k: int
    next_price_per_1k: int
    next_price_at: int


# --- messages ----------------------------------------------------------------------------------------------


@message("subnets/create")
class MsgCreateSubnet(Msg):
    modality: Annotated[str, text(32)]
    name: Annotated[str, text(64)]


@message("subnets/set_param")
class MsgSetHyperparam(Msg):
    netuid: U16
    param: Annotated[str, text(32)]
    value: U64


@message("subnets/dissolve")
class MsgDissolveSubnet(Msg):
    netuid: U16


@message("subnets/register")
class MsgRegister(Msg):
    """The signer (a coldkey) pays the burn to register ``hotkey`` on ``netuid``."""

    netuid: U16
    hotkey: Address
    max_burn: U64  # refuse if the price has risen above this (0: no limit)


@message("subnets/announce")
class MsgAnnounceEndpoint(Msg):
    """The signer (a registered hotkey) announces where and what it serves."""

    netuid: U16
    url: Annotated[str, text(MAX_URL_BYTES + 64)]
    models: Annotated[list[str], text_list(MAX_MODELS, 64)]
    price_per_1k: U64
    protocol_version: U16


def _require_owner(ctx: Context, subnet: dict[str, Any], netuid: int) -> None:
    if subnet["owner"] != ctx.signer:
        raise NOT_OWNER(f"only the owner of subnet {netuid} ({format_address(subnet['owner'])}) may do this")


def process_create(ctx: Context, msg: MsgCreateSubnet) -> dict[str, int]:
    params = get_params(ctx.state)
    if not MODALITY_PATTERN.match(msg.modality):
        raise INVALID_MODALITY(f"modality '{msg.modality[:40]}' should be lower-case words joined by '-', "
                               "such as text-generation, embedding or image-generation")
    if not msg.name.strip():
        raise INVALID_FIELD("subnets/create.name: a subnet needs a name")
    if len(neurons.netuids(ctx.state)) >= params.max_subnets:
        raise TOO_MANY_SUBNETS(f"the chain already has its maximum of {params.max_subnets} subnets")
    height = ctx.block.height
    cost = get_lock_cost(ctx.state, height)
    bank.hold(ctx.state, ctx.signer, NAME, cost, f"the subnet lock of {format_mint(cost)}")
    ctx.state.set_value(LAST_LOCK_KEY, {"amount": cost, "block": height})
    netuid = ctx.state.get_int(NEXT_NETUID_KEY) + 1
    if netuid > 65_535:
        raise TOO_MANY_SUBNETS("subnet numbers are exhausted")
    ctx.state.set_int(NEXT_NETUID_KEY, netuid)
    hyper = Hyperparams(tempo=params.default_tempo)
    neurons.put_subnet(ctx.state, netuid, {
        "owner": ctx.signer, "modality": msg.modality, "name": msg.name, "lock": cost, "created_at": height,
        "last_epoch": height, "epoch": 0, "n": 0, "burn": hyper.burn_initial, "burn_block": height,
        "params": params_to_json(hyper),
    })
    ctx.emit(SubnetCreated(netuid=netuid, owner=format_address(ctx.signer), modality=msg.modality, lock=cost))
    return {"netuid": netuid}


def process_set_hyperparam(ctx: Context, msg: MsgSetHyperparam) -> None:
    subnet = neurons.require_subnet(ctx.state, msg.netuid)
    _require_owner(ctx, subnet, msg.netuid)
    if msg.param not in HYPERPARAM_NAMES:
        raise UNKNOWN_PARAM(f"'{msg.param[:32]}' is not a hyperparameter; known: {', '.join(HYPERPARAM_NAMES)}")
    low, high = HYPERPARAM_BOUNDS[msg.param]
    if not low <= msg.value <= high:
        raise PARAM_OUT_OF_BOUNDS(f"{msg.param} must be from {low} to {high}, got {msg.value}")
    if msg.param == "max_uids" and msg.value < subnet["n"]:
        raise PARAM_OUT_OF_BOUNDS(f"max_uids cannot go below the {subnet['n']} UIDs already registered")
    raise_key = RAISE_PREFIX + neurons.netuid_bytes(msg.netuid)
    pending_raise = ctx.state.get_value(raise_key)
    current = subnet["params"][msg.param]
    subnet["params"][msg.param] = msg.value
    shape = dict(subnet["params"])  # what the subnet will be once this block's max_uids raise holds
    if pending_raise is not None and msg.param != "max_uids":
        shape["max_uids"] = pending_raise
    hyper = Hyperparams(**shape)
    if hyper.burn_min > hyper.burn_max:
        raise PARAM_OUT_OF_BOUNDS("burn_min must not exceed burn_max")
    if msg.param in EPOCH_SHAPE_PARAMS:
        check_epoch_rate(get_params(ctx.state), hyper)
        subnet["shape_block"] = ctx.block.height  # its epoch waits for the next block (fees.get_reserved_units)
    if msg.param == "max_uids":
        # A raise takes effect at the end of this block: the block's later transactions were priced (by the
        # proposer, on committed state) for the UIDs the subnet could hold when the block began, and a
        # registration's work grows with them. A lowering only takes work away, so it holds at once.
        if msg.value > current:
            ctx.state.set_value(raise_key, msg.value)
            subnet["params"]["max_uids"] = current
        else:
            ctx.state.delete(raise_key)
    neurons.put_subnet(ctx.state, msg.netuid, subnet)
    ctx.emit(SubnetParam(netuid=msg.netuid, param=msg.param, value=msg.value))


def process_dissolve(ctx: Context, msg: MsgDissolveSubnet) -> None:
    subnet = neurons.require_subnet(ctx.state, msg.netuid)
    _require_owner(ctx, subnet, msg.netuid)
    for uid, neuron in neurons.neurons(ctx.state, msg.netuid):
        # keep_totals=False: the stake vector goes below
        staking.unstake_all(ctx.state, msg.netuid, uid, neuron["hotkey"], ctx.block.height, keep_totals=False)
        ctx.state.delete(neurons.HOTKEY_PREFIX + neurons.netuid_bytes(msg.netuid) + neuron["hotkey"])
    prefix = neurons.netuid_bytes(msg.netuid)
    ctx.state.delete(neurons.KEYS_PREFIX + prefix)
    for key_prefix in (neurons.ENDPOINT_PREFIX + prefix, neurons.VECTOR_PREFIX + prefix, neurons.BONDS_PREFIX + prefix):
        for key, _ in list(ctx.state.scan(key_prefix)):
            ctx.state.delete(key)
    ctx.notify_subnet_dissolved(msg.netuid)  # weights, commitments: each module deletes its own keys
    pending = neurons.get_pending(ctx.state, msg.netuid)
    if pending:
        bank.burn_held(ctx.state, "emission", pending)  # emission not yet paid out leaves with the subnet
        neurons.set_pending(ctx.state, msg.netuid, 0)
    bank.release(ctx.state, NAME, subnet["owner"], subnet["lock"])
    ctx.state.delete(neurons.NET_PREFIX + prefix)
    ctx.state.delete(RAISE_PREFIX + prefix)
    ctx.emit(SubnetDissolved(netuid=msg.netuid, returned=subnet["lock"], burned_pending=pending))


def process_register(ctx: Context, msg: MsgRegister) -> dict[str, int]:
    netuid, hotkey, height = msg.netuid, msg.hotkey, ctx.block.height
    subnet = neurons.require_subnet(ctx.state, netuid)
    hyper = get_hyperparams(subnet)
    if neurons.uid_of(ctx.state, netuid, hotkey) is not None:
        raise HOTKEY_REGISTERED(f"hotkey {format_address(hotkey)} is already registered on subnet {netuid}")
    owner = neurons.hotkey_owner(ctx.state, hotkey)
    if owner is not None and owner != ctx.signer:
        raise HOTKEY_OWNED(f"hotkey {format_address(hotkey)} belongs to coldkey {format_address(owner)}")
    price = get_burn(subnet, height)
    if msg.max_burn and price > msg.max_burn:
        raise BURN_ABOVE_LIMIT(f"registration costs {format_mint(price)}, more than your limit "
                                 f"{format_mint(msg.max_burn)}")
    bank.burn(ctx.state, ctx.signer, price, f"the registration burn of {format_mint(price)}")
    uid = _free_uid(ctx, netuid, subnet, hyper)
    ctx.state.set_value(neurons.OWNER_PREFIX + hotkey, ctx.signer)
    neurons.set_neuron(ctx.state, netuid, uid, hotkey, ctx.signer)
    ctx.state.set_value(neurons.HOTKEY_PREFIX + neurons.netuid_bytes(netuid) + hotkey, uid)
    size = subnet["n"]
    for name in neurons.VECTORS:
        vector = neurons.get_vector(ctx.state, netuid, name, size)
        vector[uid] = height if name in ("registered_at", "last_update") else 0
        neurons.set_vector(ctx.state, netuid, name, vector)
    subnet["burn"] = min(price * hyper.burn_multiplier // 1_000, hyper.burn_max)
    subnet["burn_block"] = height
    neurons.put_subnet(ctx.state, netuid, subnet)
    ctx.emit(NeuronRegistered(netuid=netuid, uid=uid, hotkey=format_address(hotkey),
             coldkey=format_address(ctx.signer), burn=price))
    return {"netuid": netuid, "uid": uid}


def _free_uid(ctx: Context, netuid: int, subnet: dict[str, Any], hyper: Hyperparams) -> int:
    """A new UID while there is room; otherwise the pruned one (its previous occupant removed, and every module
    told, while the UID still names it)."""
    state, height = ctx.state, ctx.block.height
    if subnet["n"] < hyper.max_uids:
        subnet["n"] += 1
        return int(subnet["n"] - 1)
    size = subnet["n"]
    registered_at = neurons.get_vector(state, netuid, "registered_at", size)
    emission = neurons.get_vector(state, netuid, "emission", size)
    candidates = [uid for uid in range(size) if registered_at[uid] + hyper.immunity_period < height]
    if not candidates:
        raise SUBNET_FULL(f"subnet {netuid} is full ({size} UIDs) and every UID is still immune; "
                          "try again later")
    uid = min(candidates, key=lambda u: (int(emission[u]), int(registered_at[u]), u))
    previous = neurons.get_neuron(state, netuid, uid)
    if previous is not None:  # always, for a UID below n
        staking.unstake_all(state, netuid, uid, previous["hotkey"], height)
        state.delete(neurons.HOTKEY_PREFIX + neurons.netuid_bytes(netuid) + previous["hotkey"])
        ctx.notify_uid_freed(netuid, uid, previous["hotkey"])  # weights, commitments: each deletes its own keys
    state.delete(neurons.endpoint_key(netuid, uid))
    neurons.set_bonds(state, netuid, uid, None)
    for key, _ in list(state.scan(neurons.BONDS_PREFIX + neurons.netuid_bytes(netuid))):
        validator = int.from_bytes(key[-2:], "big")
        bonds = neurons.get_bonds(state, netuid, validator)
        if bonds is not None and len(bonds) > uid and bonds[uid]:
            # Other validators' bonds on this UID belonged to the previous occupant.
            updated = bonds.astype(np.int64)
            updated[uid] = 0
            neurons.set_bonds(state, netuid, validator, updated)
    return uid


def effective_price(endpoint: Mapping[str, Any], height: int) -> int:
    """The price per 1k tokens an announced endpoint charges in block ``height``: its pending raise from
    ``next_price_at`` on, the price in force before."""
    raise_at = int(endpoint.get("next_price_at", 0))
    if raise_at and height >= raise_at:
        return int(endpoint["next_price_per_1k"])
    return int(endpoint["price_per_1k"])


def schedule_price(previous: Mapping[str, Any] | None, price: int, height: int, notice: int) -> dict[str, int]:
    """The price fields of an endpoint announcing ``price`` in block ``height``: a raise over the price in force
    waits ``notice`` blocks (a raise to the price already pending keeps its date); anything else holds at once."""
    if previous is None:
        return {"price_per_1k": price, "next_price_per_1k": 0, "next_price_at": 0}
    current = effective_price(previous, height)
    if price <= current:
        return {"price_per_1k": price, "next_price_per_1k": 0, "next_price_at": 0}
    pending_at = int(previous.get("next_price_at", 0))
    if pending_at > height and int(previous["next_price_per_1k"]) == price:
        return {"price_per_1k": current, "next_price_per_1k": price, "next_price_at": pending_at}
    return {"price_per_1k": current, "next_price_per_1k": price, "next_price_at": height + notice}


def process_announce(ctx: Context, msg: MsgAnnounceEndpoint) -> None:
    subnet = neurons.require_subnet(ctx.state, msg.netuid)
    uid = neurons.require_uid(ctx.state, msg.netuid, ctx.signer)
    url = msg.url
    try:
        parse_endpoint_url(url, MAX_URL_BYTES)
    except ValueError as error:
        shown = url[:80].encode("ascii", "backslashreplace").decode()
        raise INVALID_ENDPOINT(f"endpoint URL '{shown}' refused: {error}") from None
    params = get_params(ctx.state)
    if msg.price_per_1k > params.max_price_per_1k:
        bound = params.max_price_per_1k
        raise PRICE_ABOVE_LIMIT(f"price_per_1k {msg.price_per_1k} grains is above the chain's bound of {bound} grains "
                                f"per 1k tokens ({format_mint(bound)}); announce a price at or below it")
    previous = ctx.state.get_value(neurons.endpoint_key(msg.netuid, uid))
    limit = get_hyperparams(subnet).serving_rate_limit
    if previous is not None and ctx.block.height - previous["block"] < limit:
        raise RATE_LIMITED(f"an endpoint may be announced once every {limit} blocks; next at block "
                           f"{previous['block'] + limit}")
    prices = schedule_price(previous, msg.price_per_1k, ctx.block.height, params.price_notice)
    ctx.state.set_value(neurons.endpoint_key(msg.netuid, uid), {
        "url": url, "models": msg.models, **prices, "protocol_version": msg.protocol_version,
        "block": ctx.block.height})
    ctx.emit(EndpointAnnounced(netuid=msg.netuid, uid=uid, url=url, price_per_1k=prices["price_per_1k"],
             next_price_per_1k=prices["next_price_per_1k"], next_price_at=prices["next_price_at"]))


# --- queries -----------------------------------------------------------------------------------------------


def _subnet_json(netuid: int, subnet: dict[str, Any], height: int) -> dict[str, Any]:
    return {"netuid": netuid, "owner": format_address(subnet["owner"]), "modality": subnet["modality"],
            "name": subnet["name"], "lock": subnet["lock"], "created_at": subnet["created_at"], "n": subnet["n"],
            "last_epoch": subnet["last_epoch"], "epoch": subnet["epoch"],
            "registration_price": get_burn(subnet, height), "params": subnet["params"]}


def query_list(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/subnets/list")
    height = state.height
    return [_subnet_json(netuid, neurons.require_subnet(state, netuid), height) for netuid in neurons.netuids(state)]


def query_lock_cost(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/subnets/lock_cost")
    return {"lock_cost": get_lock_cost(state, state.height + 1)}


METAGRAPH_OPTIONS = ("weights", "bonds")  # what /subnets/<netuid>/metagraph can add (its data, comma-separated)


def query_subnet(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/subnets/<netuid>`` (info), ``/subnets/<netuid>/metagraph`` (data ``weights``/``bonds`` adds them)."""
    if not 1 <= len(parts) <= 2:
        raise UNKNOWN_QUERY("expected /subnets/<netuid> or /subnets/<netuid>/metagraph")
    netuid = parse_netuid(parts[0])
    what = parts[1] if len(parts) == 2 else "info"
    if what not in ("info", "metagraph"):
        raise UNKNOWN_QUERY(f"no query '{what[:32]}' on a subnet; try info or metagraph")
    include = parse_options(data, METAGRAPH_OPTIONS) if what == "metagraph" else set()
    subnet = neurons.require_subnet(state, netuid)
    if what == "info":
        return _subnet_json(netuid, subnet, state.height + 1)
    return metagraph(state, netuid, subnet, include=include)


def metagraph(state: Reader, netuid: int, subnet: dict[str, Any], include: set[str]) -> dict[str, Any]:
    """Packed for size and speed at thousands of UIDs: ``hotkeys``/``coldkeys`` are the 20-byte addresses
    concatenated in UID order; each vector of neurons.VECTORS is a little-endian int64 array in bytes;
    ``endpoints`` holds each UID's announcement as canonical codec bytes (or None)."""
    size = subnet["n"]
    vectors = {name: neurons.get_vector(state, netuid, name, size).astype("<i8").tobytes()
               for name in neurons.VECTORS}
    packed = neurons.packed_keys(state, netuid)
    hotkeys = b"".join(packed[start:start + 20] for start in range(0, len(packed), neurons.KEY_PAIR))
    coldkeys = b"".join(packed[start + 20:start + 40] for start in range(0, len(packed), neurons.KEY_PAIR))
    answer: dict[str, Any] = {"netuid": netuid, "n": size, "block": state.height, "hotkeys": hotkeys,
                              "coldkeys": coldkeys, "endpoints": neurons.encoded_endpoints(state, netuid, size),
                              "params": subnet["params"], **vectors}
    if "weights" in include:
        answer["weights"] = {str(uid): pair for uid, pair in _weights_rows(state, netuid)}
    if "bonds" in include:
        answer["bonds"] = {str(uid): bonds.tobytes() for uid, bonds in neurons.bond_rows(state, netuid)}
    return answer


def _weights_rows(state: Reader, netuid: int) -> list[tuple[int, Any]]:
    # weights reads this module's hyperparameters, so it is loaded here, when a metagraph asks for its rows.
    from gridmint.chain import weights

    return weights.weights_rows(state, netuid)


def query_hotkey(state: Reader, parts: list[str], data: bytes) -> Any:
    (arg,) = expect_args(parts, 1, "/subnets/hotkey/<address>")
    hotkey = parse_address_arg("hotkey", arg)
    owner = neurons.hotkey_owner(state, hotkey)
    registrations = [netuid for netuid in neurons.netuids(state) if neurons.uid_of(state, netuid, hotkey) is not None]
    return {"hotkey": parts[0], "owner": format_address(owner) if owner else None,
            "subnets": {str(n): neurons.uid_of(state, n, hotkey) for n in registrations}}


# --- genesis -----------------------------------------------------------------------------------------------


RECORDS = (
    RecordKind(NEXT_NETUID_KEY, 0, INT),
    RecordKind(LAST_LOCK_KEY, 0, MAP(amount=INT, block=INT)),
    RecordKind(RAISE_PREFIX, 2, INT),
    RecordKind(neurons.NET_PREFIX, 2, MAP(optional=("shape_block",), owner=ADDRESS, modality=STR, name=STR, lock=INT,
                                          created_at=INT, last_epoch=INT, epoch=INT, n=INT, burn=INT, burn_block=INT,
                                          params=DICT(INT), shape_block=INT)),
    RecordKind(neurons.KEYS_PREFIX, 2, BYTES()),
    RecordKind(neurons.ENDPOINT_PREFIX, 4, MAP(url=STR, models=LIST(STR), price_per_1k=INT, next_price_per_1k=INT,
                                               next_price_at=INT, protocol_version=INT, block=INT)),
    RecordKind(neurons.HOTKEY_PREFIX, 22, INT),
    RecordKind(neurons.OWNER_PREFIX, 20, ADDRESS),
    RecordKind(neurons.VECTOR_PREFIX, None, BYTES()),  # <netuid 2B>/<vector name>
    RecordKind(neurons.BONDS_PREFIX, 4, ONE_OF(BYTES(), MAP(n=INT, uids=BYTES(), bonds=BYTES()))),
    RecordKind(neurons.PENDING_PREFIX, 2, INT),
)
GENESIS = ModuleGenesis("subnets", Params, BOUNDS, PARAMS_KEY, RECORDS)


def validate_genesis(raw: Any) -> SectionState:
    section = GENESIS.validate(raw)
    try:
        check_epoch_rate(section.params, Hyperparams(tempo=section.params.default_tempo))
    except ChainError as error:
        raise INVALID_GENESIS(f"subnets.params.default_tempo: a new subnet's {error.message}") from None
    return section


# --- invariants --------------------------------------------------------------------------------------------


def invariant_locks(state: Reader) -> str | None:
    locked = sum(neurons.require_subnet(state, n)["lock"] for n in neurons.netuids(state))
    held = bank.get_held(state, NAME)
    return None if locked == held else f"subnet locks {locked} != held by subnets {held}"


def invariant_uids(state: Reader) -> str | None:
    for netuid in neurons.netuids(state):
        subnet = neurons.require_subnet(state, netuid)
        for uid, neuron in neurons.neurons(state, netuid):
            if uid >= subnet["n"] or neurons.uid_of(state, netuid, neuron["hotkey"]) != uid:
                return f"subnet {netuid} UID {uid} is not consistent with its hotkey index"
    return None


# --- block hooks -------------------------------------------------------------------------------------------


def apply_raises(ctx: Context) -> None:
    """End of block: the max_uids raises set in it take effect (at most one per subnet)."""
    for key, raw in list(ctx.state.scan(RAISE_PREFIX)):
        ctx.state.delete(key)
        netuid = int.from_bytes(key[len(RAISE_PREFIX):], "big")
        subnet = neurons.get_subnet(ctx.state, netuid)
        if subnet is not None:
            subnet["params"]["max_uids"] = codec.decode_stored(raw)
            neurons.put_subnet(ctx.state, netuid, subnet)


MODULE = ModuleSpec(
    name=NAME,
    events=(SubnetCreated, SubnetParam, SubnetDissolved, NeuronRegistered, EndpointAnnounced),
    end_block=apply_raises,
    handlers={MsgCreateSubnet: process_create, MsgSetHyperparam: process_set_hyperparam,
              MsgDissolveSubnet: process_dissolve, MsgRegister: process_register,
              MsgAnnounceEndpoint: process_announce},
    queries={"list": query_list, "lock_cost": query_lock_cost, "params": GENESIS.query, "hotkey": query_hotkey,
             "*": query_subnet},
    validate_genesis=validate_genesis,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    invariants={"locks": invariant_locks, "uids": invariant_uids},
)
