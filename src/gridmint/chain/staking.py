"""staking: coldkeys stake to hotkeys on a subnet; delegation with the validator's take.

A coldkey adds stake to any registered hotkey (its own or, as a delegator, someone else's) and removes it
again; the funds stay in the bank under ``staking``. A hotkey's total stake on a subnet is what Yuma weighs
its voice by, and the top ``max_validators`` totals hold validator permits at each epoch. When dividends are
paid, the hotkey's owner keeps the hotkey's ``take`` (default 18%) and the rest is added to every staker's
stake in proportion to it, so delegators compound.

State:
- ``staking/stake/<netuid 2B><hotkey 20B><coldkey 20B>`` -> grains
- ``staking/take/<hotkey 20B>`` -> u16 out of 65535 (absent: the default)
- the per-UID ``stake`` vector of neurons.py holds each hotkey's total on the subnet
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridmint.chain import bank, neurons
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import INVALID_GENESIS, register
from gridmint.chain.fields import address, amount, u16
from gridmint.chain.module import Context, ModuleSpec
from gridmint.chain.query_args import expect_args, parse_address_arg, parse_netuid
from gridmint.chain.state import Reader, State
from gridmint.chain.tx import Msg, message
from gridmint.chain.units import format_mint
from gridmint.chain.yuma import split_exactly

NAME = "staking"
DEFAULT_TAKE = 11_796  # 18% of 65535
MAX_TAKE = 11_796

NOT_ENOUGH_STAKE = register(NAME, 1, "not_enough_stake")
NOT_HOTKEY_OWNER = register(NAME, 2, "not_hotkey_owner")
TAKE_OUT_OF_BOUNDS = register(NAME, 3, "take_out_of_bounds")

STAKE_PREFIX = b"staking/stake/"
TAKE_PREFIX = b"staking/take/"


def stake_key(netuid: int, hotkey: bytes, coldkey: bytes) -> bytes:
    return STAKE_PREFIX + neurons.netuid_bytes(netuid) + hotkey + coldkey


def get_stake(state: Reader, netuid: int, hotkey: bytes, coldkey: bytes) -> int:
    return state.get_int(stake_key(netuid, hotkey, coldkey))


def stakers(state: Reader, netuid: int, hotkey: bytes) -> list[tuple[bytes, int]]:
    """``(coldkey, grains)`` of everyone staked to ``hotkey`` on ``netuid``, in coldkey order."""
    prefix = STAKE_PREFIX + neurons.netuid_bytes(netuid) + hotkey
    return [(coldkey, int(grains)) for coldkey, grains in state.scan_values(prefix)]


def get_take(state: Reader, hotkey: bytes) -> int:
    return int(state.get_value(TAKE_PREFIX + hotkey, DEFAULT_TAKE))


def _change_total(state: State, netuid: int, uid: int, delta: int) -> None:
    size = neurons.require_subnet(state, netuid)["n"]
    totals = neurons.get_vector(state, netuid, "stake", size)
    totals[uid] += delta
    neurons.set_vector(state, netuid, "stake", totals)


def add_stake(state: State, netuid: int, uid: int, hotkey: bytes, coldkey: bytes, grains: int) -> None:
    """Book ``grains`` (already held by this module) as ``coldkey``'s stake on ``hotkey``."""
    key = stake_key(netuid, hotkey, coldkey)
    state.set_int(key, state.get_int(key) + grains)
    _change_total(state, netuid, uid, grains)


def unstake_all(state: State, netuid: int, uid: int, hotkey: bytes) -> None:
    """Return every staker's stake on ``hotkey`` (a pruned UID or a dissolved subnet)."""
    returned = 0
    for coldkey, grains in stakers(state, netuid, hotkey):
        state.delete(stake_key(netuid, hotkey, coldkey))
        bank.release(state, NAME, coldkey, grains)
        returned += grains
    if returned:
        _change_total(state, netuid, uid, -returned)


def pay_dividend(state: State, netuid: int, uid: int, hotkey: bytes, grains: int, source: str) -> int:
    """Pay a validator's dividend held by ``source``: the take to the hotkey's owner, the rest compounded into
    its stakers' stake pro rata. Returns the take."""
    owner = neurons.hotkey_owner(state, hotkey)
    holders = stakers(state, netuid, hotkey)
    take = grains * get_take(state, hotkey) // 65_535 if owner is not None else 0
    if not holders:
        take = grains
    if take and owner is not None:
        bank.release(state, source, owner, take)
    rest = grains - take
    if rest:
        bank.move_held(state, source, NAME, rest)
        parts = split_exactly(rest, [stake for _, stake in holders])
        for (coldkey, _), part in zip(holders, parts, strict=True):
            if part:
                key = stake_key(netuid, hotkey, coldkey)
                state.set_int(key, state.get_int(key) + part)
        _change_total(state, netuid, uid, rest)
    return take


# --- messages ----------------------------------------------------------------------------------------------


@message
@dataclass(frozen=True)
class MsgAddStake(Msg):
    TYPE = "staking/add"
    FIELDS = (("netuid", u16), ("hotkey", address), ("amount", amount))

    netuid: int
    hotkey: bytes
    amount: int


@message
@dataclass(frozen=True)
class MsgRemoveStake(Msg):
    TYPE = "staking/remove"
    FIELDS = (("netuid", u16), ("hotkey", address), ("amount", amount))

    netuid: int
    hotkey: bytes
    amount: int


@message
@dataclass(frozen=True)
class MsgSetTake(Msg):
    """The hotkey's owner (a coldkey) sets the share of dividends it keeps before delegators are paid."""

    TYPE = "staking/set_take"
    FIELDS = (("hotkey", address), ("take", u16))

    hotkey: bytes
    take: int


def process_add(ctx: Context, msg: MsgAddStake) -> None:
    neurons.require_subnet(ctx.state, msg.netuid)
    uid = neurons.require_uid(ctx.state, msg.netuid, msg.hotkey)
    bank.hold(ctx.state, ctx.signer, NAME, msg.amount, f"a stake of {format_mint(msg.amount)}")
    add_stake(ctx.state, msg.netuid, uid, msg.hotkey, ctx.signer, msg.amount)
    ctx.emit("stake_added", netuid=msg.netuid, hotkey=format_address(msg.hotkey),
             coldkey=format_address(ctx.signer), amount=msg.amount)


def process_remove(ctx: Context, msg: MsgRemoveStake) -> None:
    neurons.require_subnet(ctx.state, msg.netuid)
    uid = neurons.require_uid(ctx.state, msg.netuid, msg.hotkey)
    key = stake_key(msg.netuid, msg.hotkey, ctx.signer)
    staked = ctx.state.get_int(key)
    if staked < msg.amount:
        raise NOT_ENOUGH_STAKE(f"cannot unstake {format_mint(msg.amount)}: {format_address(ctx.signer)} has "
                               f"{format_mint(staked)} staked to {format_address(msg.hotkey)} on subnet {msg.netuid}")
    ctx.state.set_int(key, staked - msg.amount)
    _change_total(ctx.state, msg.netuid, uid, -msg.amount)
    bank.release(ctx.state, NAME, ctx.signer, msg.amount)
    ctx.emit("stake_removed", netuid=msg.netuid, hotkey=format_address(msg.hotkey),
             coldkey=format_address(ctx.signer), amount=msg.amount)


def process_set_take(ctx: Context, msg: MsgSetTake) -> None:
    if neurons.hotkey_owner(ctx.state, msg.hotkey) != ctx.signer:
        raise NOT_HOTKEY_OWNER(f"only the coldkey that registered {format_address(msg.hotkey)} sets its take")
    if msg.take > MAX_TAKE:
        raise TAKE_OUT_OF_BOUNDS(f"take must be from 0 to {MAX_TAKE} (18%), got {msg.take}")
    ctx.state.set_value(TAKE_PREFIX + msg.hotkey, msg.take)
    ctx.emit("take_set", hotkey=format_address(msg.hotkey), take=msg.take)


# --- queries -----------------------------------------------------------------------------------------------


def query_stakes(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/staking/stakes/<coldkey>``: every stake of a coldkey."""
    (arg,) = expect_args(parts, 1, "/staking/stakes/<coldkey address>")
    coldkey = parse_address_arg("coldkey", arg)
    found = []
    for key, grains in state.scan_values(STAKE_PREFIX):
        if key[22:] == coldkey:
            found.append({"netuid": int.from_bytes(key[:2], "big"), "hotkey": format_address(key[2:22]),
                          "amount": int(grains)})
    return found


def query_hotkey(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/staking/hotkey/<netuid>/<hotkey>``: a hotkey's stakers and take."""
    netuid_text, hotkey_text = expect_args(parts, 2, "/staking/hotkey/<netuid>/<hotkey address>")
    netuid = parse_netuid(netuid_text)
    hotkey = parse_address_arg("hotkey", hotkey_text)
    holders = stakers(state, netuid, hotkey)
    return {"hotkey": parts[1], "take": get_take(state, hotkey), "total": sum(g for _, g in holders),
            "stakers": [{"coldkey": format_address(c), "amount": g} for c, g in holders]}


# --- genesis and invariants --------------------------------------------------------------------------------


def validate_genesis(raw: Any) -> None:
    if raw not in ({}, None):
        raise INVALID_GENESIS("staking: genesis has no settings yet; expected {}")


def invariant_held(state: Reader) -> str | None:
    total = sum(int(grains) for _, grains in state.scan_values(STAKE_PREFIX))
    held = bank.get_held(state, NAME)
    return None if total == held else f"stakes {total} != held by staking {held}"


def invariant_totals(state: Reader) -> str | None:
    for netuid in neurons.netuids(state):
        subnet = neurons.require_subnet(state, netuid)
        totals = neurons.get_vector(state, netuid, "stake", subnet["n"])
        for uid, neuron in neurons.neurons(state, netuid):
            booked = sum(g for _, g in stakers(state, netuid, neuron["hotkey"]))
            if booked != int(totals[uid]):
                return f"subnet {netuid} UID {uid}: total {int(totals[uid])} != stakes {booked}"
    return None


MODULE = ModuleSpec(
    name=NAME,
    handlers={MsgAddStake: process_add, MsgRemoveStake: process_remove, MsgSetTake: process_set_take},
    queries={"stakes": query_stakes, "hotkey": query_hotkey},
    validate_genesis=validate_genesis,
    invariants={"held": invariant_held, "totals": invariant_totals},
)
