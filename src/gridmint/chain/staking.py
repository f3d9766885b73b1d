"""staking: coldkeys stake to hotkeys on a subnet; delegation with the validator's take.

A coldkey adds stake to any registered hotkey (its own or, as a delegator, someone else's) and removes it
again; the funds stay in the bank under ``staking``. A hotkey's total stake on a subnet is what Yuma weighs
its voice by, and the top ``max_validators`` totals hold validator permits at each epoch. When dividends are
paid, the hotkey's owner keeps the hotkey's ``take`` (default 18%) and the rest is added to its stakers' stake
in proportion to it, so delegators compound.

**Share pools.** Each hotkey on a subnet has one pool: its total ``stake`` in grains and its total ``shares``.
A staker owns shares, never grains, and is worth ``shares × stake // total_shares`` (rounded down). Paying a
dividend only raises the pool's stake: one read and one write per validator, whatever the number of its
stakers, so an epoch costs O(validators), and a thousand 1-grain delegations cost the epoch nothing. This is
the scheme of Bittensor's subtensor (its ``share_pool`` crate, over a hotkey's total alpha and shares), and
the compounding counterpart of Cosmos' F1 accumulator (F1 pays rewards that must be withdrawn; a share pool
compounds them, as the old per-staker walk did).

**Rounding, never in anyone's favour but the pool's.** The pool's stake is exact to the grain (it is what the
bank holds for it), and each rounding is taken against the one who acts, so no grain is ever created:
- staking ``a`` buys ``a × shares // stake`` shares (a new pool issues ``SHARES_PER_GRAIN`` per grain);
- unstaking ``x`` burns ``ceil(x × shares / stake)`` shares;
- a staker leaving with everything receives ``shares × stake // total_shares``; the last one out receives the
  whole stake, dust included.
The dust (what the floors leave) stays in the pool and goes to whoever remains: Σ stakers' worth ≤ the pool's
stake < Σ worth + the number of stakers. The price of a share never falls, so a pool's shares stay below
``stake × SHARES_PER_GRAIN`` (< 2**128: shares are stored as 16 bytes). Buying in loses under a share's worth
plus a grain, and with 2**32 shares per grain a share is worth under a grain until the pool has compounded
2**32-fold (a pool started with ``min_stake`` would need 4 million MINT of dividends in one epoch).

**Spam.** Each stake added must be at least ``min_stake`` (0.001 MINT by default, like Bittensor's minimum
stake; genesis bounds 1 grain to 2**64 - 1): a position costs real locked funds besides the message fee.
An unstake that would leave a position worth less than ``min_stake`` closes it and returns the remainder too
(Bittensor clears small nominations the same way; here the owner's own position too). The number of stakers
per hotkey is not capped (nor in Bittensor: a cap would let a spammer fill a validator's slots and lock
honest delegators out); stakers cost the epoch nothing, and where they do cost work (below) that work is
bounded per block.

**Pruning and dissolving.** ``unstake_all`` closes a hotkey's pool in O(1): the hotkey's total leaves its
UID and the pool joins a queue; ``end_block`` returns at most ``returns_per_block`` positions per block (the
oldest pool first, each staker their worth, the last the rest). A pool of a few positions is returned in the
block that closed it; one with a hundred thousand 0.001-MINT spam positions takes a hundred blocks and never
one slow block. A closed pool takes no stake or dividends, and the hotkey registering again starts a new pool.

State:
- ``staking/params`` -> ``{"min_stake", "returns_per_block"}``
- ``staking/next_pool`` -> the last pool id issued
- ``staking/live/<netuid 2B><hotkey 20B>`` -> the id of the hotkey's open pool on the subnet
- ``staking/pool/<id 8B>`` -> ``{"netuid", "hotkey", "stake", "shares" (16 bytes), "count"}`` (count: positions)
- ``staking/position/<coldkey 20B><id 8B>`` -> ``[shares (16 bytes), slot]``: the index keyed by the staker
- ``staking/slot/<id 8B><slot 8B>`` -> coldkey; slots 0..count-1 are dense (a leaver's slot takes the last one)
- ``staking/closing/<id 8B>`` -> 1 while a closed pool waits to be returned
- ``staking/take/<hotkey 20B>`` -> u16 out of 65535 (absent: the default)
- the per-UID ``stake`` vector of neurons.py holds each hotkey's open pool's stake on the subnet
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridmint.chain import bank, neurons
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import register
from gridmint.chain.fields import U16, Address, Amount
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.module_genesis import ModuleGenesis
from gridmint.chain.params import params_reader
from gridmint.chain.query_args import expect_args, parse_address_arg, parse_netuid, parse_page
from gridmint.chain.records import ADDRESS, BYTES, INT, MAP, TUPLE, RecordKind
from gridmint.chain.state import Reader, State
from gridmint.chain.tx import Msg, message
from gridmint.chain.units import GRAINS_PER_MINT, MAX_U64, format_mint

NAME = "staking"
DEFAULT_TAKE = 11_796  # 18% of 65535
STAKERS_PER_PAGE = 1_000  # stakers in one answer of /staking/hotkey
MAX_TAKE = 11_796
SHARES_PER_GRAIN = 2**32  # a new pool's price: a share is worth 2**-32 grains
SHARES_BYTES = 16  # shares < 2**96 grains × 2**32

NOT_ENOUGH_STAKE = register(NAME, 1, "not_enough_stake")
NOT_HOTKEY_OWNER = register(NAME, 2, "not_hotkey_owner")
TAKE_OUT_OF_BOUNDS = register(NAME, 3, "take_out_of_bounds")
STAKE_BELOW_MINIMUM = register(NAME, 4, "stake_below_minimum")


@dataclass(frozen=True)
class Params:
    min_stake: int = GRAINS_PER_MINT // 1_000  # each stake added, in grains
    returns_per_block: int = 1_024  # positions of closed pools returned per block at most


# At most 1,024 returns a block: each block reserves them while pools wait (chain/fees.py STAKE_RETURN), and the
# end-block queues together must leave a block with its largest epoch under a second.
BOUNDS = {"min_stake": (1, MAX_U64), "returns_per_block": (1, 1_024)}

PARAMS_KEY = b"staking/params"
NEXT_POOL_KEY = b"staking/next_pool"
LIVE_PREFIX = b"staking/live/"
POOL_PREFIX = b"staking/pool/"
POSITION_PREFIX = b"staking/position/"
SLOT_PREFIX = b"staking/slot/"
CLOSING_PREFIX = b"staking/closing/"
TAKE_PREFIX = b"staking/take/"


get_params = params_reader(PARAMS_KEY, Params)


# --- pools and positions -----------------------------------------------------------------------------------


@dataclass
class Pool:
    id: int
    netuid: int
    hotkey: bytes
    stake: int
    shares: int
    count: int  # positions, in slots 0..count-1

    def worth(self, shares: int) -> int:
        """What ``shares`` of this pool are worth, rounded down (the dust stays in the pool)."""
        return shares * self.stake // self.shares


@dataclass
class Position:
    coldkey: bytes
    pool_id: int
    shares: int
    slot: int


def _id_bytes(pool_id: int) -> bytes:
    return pool_id.to_bytes(8, "big")


def _pool_key(pool_id: int) -> bytes:
    return POOL_PREFIX + _id_bytes(pool_id)


def _live_key(netuid: int, hotkey: bytes) -> bytes:
    return LIVE_PREFIX + neurons.netuid_bytes(netuid) + hotkey


def _position_key(coldkey: bytes, pool_id: int) -> bytes:
    return POSITION_PREFIX + coldkey + _id_bytes(pool_id)


def _slot_key(pool_id: int, slot: int) -> bytes:
    return SLOT_PREFIX + _id_bytes(pool_id) + slot.to_bytes(8, "big")


def _shares_bytes(shares: int) -> bytes:
    return shares.to_bytes(SHARES_BYTES, "big")


def _read_pool(state: Reader, pool_id: int) -> Pool | None:
    raw = state.get_value(_pool_key(pool_id))
    if raw is None:
        return None
    return Pool(pool_id, raw["netuid"], raw["hotkey"], raw["stake"], int.from_bytes(raw["shares"], "big"),
                raw["count"])


def _write_pool(state: State, pool: Pool) -> None:
    """An emptied pool (no shares left: the last staker took its whole stake) is deleted."""
    if pool.shares == 0:
        state.delete(_pool_key(pool.id))
        return
    state.set_value(_pool_key(pool.id), {"netuid": pool.netuid, "hotkey": pool.hotkey, "stake": pool.stake,
                                        "shares": _shares_bytes(pool.shares), "count": pool.count})


def live_pool(state: Reader, netuid: int, hotkey: bytes) -> Pool | None:
    pool_id = state.get_value(_live_key(netuid, hotkey))
    return None if pool_id is None else _read_pool(state, pool_id)


def _read_position(state: Reader, coldkey: bytes, pool_id: int) -> Position | None:
    raw = state.get_value(_position_key(coldkey, pool_id))
    return None if raw is None else Position(coldkey, pool_id, int.from_bytes(raw[0], "big"), raw[1])


def _write_position(state: State, position: Position) -> None:
    state.set_value(_position_key(position.coldkey, position.pool_id),
                    [_shares_bytes(position.shares), position.slot])


def get_stake(state: Reader, netuid: int, hotkey: bytes, coldkey: bytes) -> int:
    """What ``coldkey`` has staked to ``hotkey`` on ``netuid`` (its shares' worth, rounded down)."""
    pool = live_pool(state, netuid, hotkey)
    position = None if pool is None else _read_position(state, coldkey, pool.id)
    return 0 if pool is None or position is None else pool.worth(position.shares)


def hotkey_total(state: Reader, netuid: int, hotkey: bytes) -> int:
    pool = live_pool(state, netuid, hotkey)
    return 0 if pool is None else pool.stake


def _pool_stakers(state: Reader, pool: Pool) -> list[tuple[bytes, int]]:
    positions = []
    for _, coldkey in state.scan_values(SLOT_PREFIX + _id_bytes(pool.id)):
        position = _read_position(state, coldkey, pool.id)
        if position is not None:
            positions.append((coldkey, pool.worth(position.shares)))
    return sorted(positions)


def stakers(state: Reader, netuid: int, hotkey: bytes) -> list[tuple[bytes, int]]:
    """``(coldkey, grains)`` of everyone staked to ``hotkey`` on ``netuid``, in coldkey order (a query's and a
    test's walk; consensus code never walks stakers but to return a closed pool, within a per-block budget)."""
    pool = live_pool(state, netuid, hotkey)
    return [] if pool is None else _pool_stakers(state, pool)


def get_take(state: Reader, hotkey: bytes) -> int:
    return int(state.get_value(TAKE_PREFIX + hotkey, DEFAULT_TAKE))


def _change_total(state: State, netuid: int, uid: int, delta: int) -> None:
    size = neurons.require_subnet(state, netuid)["n"]
    totals = neurons.get_vector(state, netuid, "stake", size)
    totals[uid] += delta
    neurons.set_vector(state, netuid, "stake", totals)


def add_stake(state: State, netuid: int, uid: int, hotkey: bytes, coldkey: bytes, grains: int) -> None:
    """Book ``grains`` (already held by this module) as ``coldkey``'s stake on ``hotkey``: buy shares at the
    pool's price, rounded down (a new or emptied pool issues ``SHARES_PER_GRAIN`` per grain)."""
    pool = live_pool(state, netuid, hotkey)
    if pool is None:
        pool_id = state.get_int(NEXT_POOL_KEY) + 1
        state.set_int(NEXT_POOL_KEY, pool_id)
        state.set_value(_live_key(netuid, hotkey), pool_id)
        pool = Pool(pool_id, netuid, hotkey, 0, 0, 0)
    bought = grains * SHARES_PER_GRAIN if pool.shares == 0 else grains * pool.shares // pool.stake
    if bought == 0:
        raise STAKE_BELOW_MINIMUM(f"a stake of {format_mint(grains)} buys no share of {format_address(hotkey)}'s "
                                  f"pool, where a share is worth {pool.stake // pool.shares} grains; stake more")
    position = _read_position(state, coldkey, pool.id)
    if position is None:
        position = Position(coldkey, pool.id, 0, pool.count)
        state.set_value(_slot_key(pool.id, pool.count), coldkey)
        pool.count += 1
    position.shares += bought
    pool.shares += bought
    pool.stake += grains
    _write_position(state, position)
    _write_pool(state, pool)
    _change_total(state, netuid, uid, grains)


def _drop_position(state: State, pool: Pool, position: Position) -> None:
    """Delete a position and keep the slots dense: the last slot's staker moves into the freed one."""
    last = pool.count - 1
    if position.slot != last:
        mover = state.get_value(_slot_key(pool.id, last))
        moved = _read_position(state, mover, pool.id)
        if moved is None:
            raise RuntimeError(f"staking pool {pool.id}: slot {last} names a coldkey without a position")
        moved.slot = position.slot
        _write_position(state, moved)
        state.set_value(_slot_key(pool.id, position.slot), mover)
    state.delete(_slot_key(pool.id, last))
    state.delete(_position_key(position.coldkey, pool.id))
    pool.count = last


def remove_stake(state: State, netuid: int, uid: int, hotkey: bytes, coldkey: bytes, grains: int) -> int:
    """Return ``grains`` of ``coldkey``'s stake on ``hotkey``; all of it if less than ``min_stake`` would be left.
    Returns the grains returned."""
    pool = live_pool(state, netuid, hotkey)
    position = None if pool is None else _read_position(state, coldkey, pool.id)
    worth = 0 if pool is None or position is None else pool.worth(position.shares)
    if pool is None or position is None or worth < grains:
        raise NOT_ENOUGH_STAKE(f"cannot unstake {format_mint(grains)}: {format_address(coldkey)} has "
                               f"{format_mint(worth)} staked to {format_address(hotkey)} on subnet {netuid}")
    burned = -(-grains * pool.shares // pool.stake)  # rounded up: the pool keeps the fraction
    if worth - grains < get_params(state).min_stake or burned >= position.shares:
        grains, burned = worth, position.shares
        _drop_position(state, pool, position)
    else:
        position.shares -= burned
        _write_position(state, position)
    pool.shares -= burned
    pool.stake -= grains
    _write_pool(state, pool)
    if pool.shares == 0:
        state.delete(_live_key(netuid, hotkey))
    _change_total(state, netuid, uid, -grains)
    bank.release(state, NAME, coldkey, grains)
    return grains


def unstake_all(state: State, netuid: int, uid: int, hotkey: bytes, height: int, keep_totals: bool = True) -> None:
    """Close ``hotkey``'s pool (a pruned UID or a dissolved subnet) in O(1): its stake leaves the UID's total
    now, and ``end_block`` returns its positions to their stakers, ``returns_per_block`` at most per block.
    ``keep_totals=False`` leaves the subnet's stake vector alone, for a dissolve that deletes it: rewriting a
    4,096-entry vector once per UID would cost the dissolve O(UIDs²)."""
    pool = live_pool(state, netuid, hotkey)
    if pool is None:
        return
    state.delete(_live_key(netuid, hotkey))
    # The block that closes it returns nothing of it: its units were counted before the pool joined the queue, so
    # the returns wait for the next block, which reserves them (chain/fees.py).
    state.set_value(CLOSING_PREFIX + _id_bytes(pool.id), height)
    if keep_totals:
        _change_total(state, netuid, uid, -pool.stake)


def is_returning(state: Reader) -> bool:
    """Whether closed pools wait to return positions (each block then reserves the work: chain/fees.py)."""
    return any(True for _ in state.scan(CLOSING_PREFIX, limit=1))


def return_closed_pools(ctx: Context) -> None:
    """Block hook: return the positions of closed pools, oldest pool first, within the per-block budget. Each
    staker receives their shares' worth; the last of a pool receives what is left, dust included."""
    state = ctx.state
    budget = get_params(state).returns_per_block
    # At most ``budget`` pools are read: each returns a position or, empty, leaves the queue.
    for key, _ in list(state.scan(CLOSING_PREFIX, limit=budget)):
        if budget == 0:
            return
        if state.get_value(key) == ctx.block.height:  # closed by this block's transactions: the next returns it
            continue
        pool = _read_pool(state, int.from_bytes(key[len(CLOSING_PREFIX):], "big"))
        if pool is None:
            raise RuntimeError(f"staking: closed pool {key.hex()} has no record")
        returned = 0
        while pool.count and budget:
            coldkey = state.get_value(_slot_key(pool.id, pool.count - 1))
            position = _read_position(state, coldkey, pool.id)
            if position is None:
                raise RuntimeError(f"staking pool {pool.id}: slot {pool.count - 1} has no position")
            grains = pool.worth(position.shares)
            _drop_position(state, pool, position)
            pool.shares -= position.shares
            pool.stake -= grains
            bank.release(state, NAME, coldkey, grains)
            returned += grains
            budget -= 1
        _write_pool(state, pool)
        if pool.count == 0:
            state.delete(key)
        ctx.emit(StakeReturned(netuid=pool.netuid, hotkey=format_address(pool.hotkey), amount=returned,
                 stakers_left=pool.count))


def pay_dividends(state: State, netuid: int, payments: list[tuple[int, bytes, int]], source: str) -> None:
    """Pay validators' dividends held by ``source``, ``(uid, hotkey, grains)`` each: the take to the hotkey's
    owner (all of it if no one stakes to the hotkey), the rest compounded into its pool (one read and one write
    per validator, whatever the number of its stakers). The UIDs' totals are updated in one write."""
    compounded: dict[int, int] = {}
    into_pools = 0
    for uid, hotkey, grains in payments:
        owner = neurons.hotkey_owner(state, hotkey)
        if owner is None:
            raise RuntimeError(f"dividend to hotkey {format_address(hotkey)}, which no coldkey registered")
        pool = live_pool(state, netuid, hotkey)
        take = grains if pool is None else grains * get_take(state, hotkey) // 65_535
        if take:
            bank.release(state, source, owner, take)
        rest = grains - take
        if pool is not None and rest:
            pool.stake += rest
            _write_pool(state, pool)
            compounded[uid] = compounded.get(uid, 0) + rest
            into_pools += rest
    if into_pools:
        bank.move_held(state, source, NAME, into_pools)
        size = neurons.require_subnet(state, netuid)["n"]
        totals = neurons.get_vector(state, netuid, "stake", size)
        for uid, rest in compounded.items():
            totals[uid] += rest
        neurons.set_vector(state, netuid, "stake", totals)


# --- events ----------------------------------------------------------------------------------------------


@event("stake_returned")
class StakeReturned(EventData):
    """Stake of a closed pool went back to its stakers."""

    netuid: int
    hotkey: str
    amount: int
    stakers_left: int


@event("stake_added")
class StakeAdded(EventData):
    """A coldkey staked to a hotkey."""

    netuid: int
    hotkey: str
    coldkey: str
    amount: int


@event("stake_removed")
class StakeRemoved(EventData):
    """A coldkey unstaked from a hotkey."""

    netuid: int
    hotkey: str
    coldkey: str
    amount: int


@event("take_set")
class TakeSet(EventData):
    """A hotkey's delegate take changed."""

    hotkey: str
    take: int


# --- messages ----------------------------------------------------------------------------------------------


@message("staking/add")
class MsgAddStake(Msg):
    netuid: U16
    hotkey: Address
    amount: Amount


@message("staking/remove")
class MsgRemoveStake(Msg):
    """Unstake ``amount``; if the position would be left worth less than ``min_stake``, all of it."""

    netuid: U16
    hotkey: Address
    amount: Amount


@message("staking/set_take")
class MsgSetTake(Msg):
    """The hotkey's owner (a coldkey) sets the share of dividends it keeps before delegators are paid."""

    hotkey: Address
    take: U16


def process_add(ctx: Context, msg: MsgAddStake) -> None:
    neurons.require_subnet(ctx.state, msg.netuid)
    uid = neurons.require_uid(ctx.state, msg.netuid, msg.hotkey)
    minimum = get_params(ctx.state).min_stake
    if msg.amount < minimum:
        raise STAKE_BELOW_MINIMUM(f"a stake of {format_mint(msg.amount)} is below the minimum of "
                                  f"{format_mint(minimum)} per stake added")
    bank.hold(ctx.state, ctx.signer, NAME, msg.amount, f"a stake of {format_mint(msg.amount)}")
    add_stake(ctx.state, msg.netuid, uid, msg.hotkey, ctx.signer, msg.amount)
    ctx.emit(StakeAdded(netuid=msg.netuid, hotkey=format_address(msg.hotkey),
             coldkey=format_address(ctx.signer), amount=msg.amount))


def process_remove(ctx: Context, msg: MsgRemoveStake) -> None:
    neurons.require_subnet(ctx.state, msg.netuid)
    uid = neurons.require_uid(ctx.state, msg.netuid, msg.hotkey)
    returned = remove_stake(ctx.state, msg.netuid, uid, msg.hotkey, ctx.signer, msg.amount)
    ctx.emit(StakeRemoved(netuid=msg.netuid, hotkey=format_address(msg.hotkey),
             coldkey=format_address(ctx.signer), amount=returned))


def process_set_take(ctx: Context, msg: MsgSetTake) -> None:
    if neurons.hotkey_owner(ctx.state, msg.hotkey) != ctx.signer:
        raise NOT_HOTKEY_OWNER(f"only the coldkey that registered {format_address(msg.hotkey)} sets its take")
    if msg.take > MAX_TAKE:
        raise TAKE_OUT_OF_BOUNDS(f"take must be from 0 to {MAX_TAKE} (18%), got {msg.take}")
    ctx.state.set_value(TAKE_PREFIX + msg.hotkey, msg.take)
    ctx.emit(TakeSet(hotkey=format_address(msg.hotkey), take=msg.take))


# --- queries -----------------------------------------------------------------------------------------------


def query_stakes(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/staking/stakes/<coldkey>``: every stake of a coldkey, from the index keyed by the coldkey (a closed
    pool's stake is listed until it has been returned)."""
    (arg,) = expect_args(parts, 1, "/staking/stakes/<coldkey address>")
    coldkey = parse_address_arg("coldkey", arg)
    found = []
    for key, raw in state.scan_values(POSITION_PREFIX + coldkey):
        pool = _read_pool(state, int.from_bytes(key, "big"))
        if pool is not None:
            found.append((pool.netuid, pool.hotkey, pool.worth(int.from_bytes(raw[0], "big"))))
    return [{"netuid": netuid, "hotkey": format_address(hotkey), "amount": grains}
            for netuid, hotkey, grains in sorted(found)]


def query_hotkey(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/staking/hotkey/<netuid>/<hotkey>``: a hotkey's take, total stake and stakers, ``STAKERS_PER_PAGE`` a
    page (data ``page=<n>``, from 0; ``count`` and ``pages`` say how many), so that an answer reads what it returns
    however many accounts stake to the hotkey."""
    netuid_text, hotkey_text = expect_args(parts, 2, "/staking/hotkey/<netuid>/<hotkey address>")
    netuid = parse_netuid(netuid_text)
    hotkey = parse_address_arg("hotkey", hotkey_text)
    page = parse_page(data)
    pool = live_pool(state, netuid, hotkey)
    count = 0 if pool is None else pool.count
    holders = []
    if pool is not None:
        for slot in range(page * STAKERS_PER_PAGE, min((page + 1) * STAKERS_PER_PAGE, count)):
            coldkey = state.get_value(_slot_key(pool.id, slot))
            position = _read_position(state, coldkey, pool.id)
            if position is not None:
                holders.append((coldkey, pool.worth(position.shares)))
    return {"hotkey": parts[1], "take": get_take(state, hotkey), "total": 0 if pool is None else pool.stake,
            "count": count, "page": page, "pages": max(1, -(-count // STAKERS_PER_PAGE)),
            "stakers": [{"coldkey": format_address(c), "amount": g} for c, g in sorted(holders)]}


# --- genesis and invariants --------------------------------------------------------------------------------


RECORDS = (
    RecordKind(NEXT_POOL_KEY, 0, INT),
    RecordKind(LIVE_PREFIX, 22, INT),  # <netuid 2B><hotkey 20B> -> pool id
    RecordKind(POOL_PREFIX, 8, MAP(netuid=INT, hotkey=ADDRESS, stake=INT, shares=BYTES(SHARES_BYTES), count=INT)),
    RecordKind(POSITION_PREFIX, 28, TUPLE(BYTES(SHARES_BYTES), INT)),  # <coldkey 20B><pool 8B> -> [shares, slot]
    RecordKind(SLOT_PREFIX, 16, ADDRESS),  # <pool 8B><slot 8B> -> coldkey
    RecordKind(CLOSING_PREFIX, 8, INT),
    RecordKind(TAKE_PREFIX, 20, INT),
)
GENESIS = ModuleGenesis(NAME, Params, BOUNDS, PARAMS_KEY, RECORDS)


def invariant_held(state: Reader) -> str | None:
    """The bank holds for staking exactly the pools' stakes, open and closed."""
    total = sum(int(raw["stake"]) for _, raw in state.scan_values(POOL_PREFIX))
    held = bank.get_held(state, NAME)
    return None if total == held else f"pools {total} != held by staking {held}"


def invariant_totals(state: Reader) -> str | None:
    """Each UID's stake entry is its hotkey's open pool's stake."""
    for netuid in neurons.netuids(state):
        subnet = neurons.require_subnet(state, netuid)
        totals = neurons.get_vector(state, netuid, "stake", subnet["n"])
        for uid, neuron in neurons.neurons(state, netuid):
            booked = hotkey_total(state, netuid, neuron["hotkey"])
            if booked != int(totals[uid]):
                return f"subnet {netuid} UID {uid}: total {int(totals[uid])} != pool stake {booked}"
    return None


def invariant_pools(state: Reader) -> str | None:
    """Every pool is open (named by its hotkey) or closing, never both; its positions (the index keyed by the
    coldkey) and its dense slots name each other; their shares add up to the pool's; the dust the floors leave
    is under one grain per position."""
    live = {int(pool_id): key for key, pool_id in state.scan_values(LIVE_PREFIX)}
    closing = {int.from_bytes(key, "big") for key, _ in state.scan_values(CLOSING_PREFIX)}
    positions: dict[int, list[tuple[bytes, int, int]]] = {}
    for key, raw in state.scan_values(POSITION_PREFIX):
        coldkey, pool_id = key[:20], int.from_bytes(key[20:], "big")
        positions.setdefault(pool_id, []).append((coldkey, int.from_bytes(raw[0], "big"), raw[1]))
    slots: dict[int, dict[int, bytes]] = {}
    for key, coldkey in state.scan_values(SLOT_PREFIX):
        slots.setdefault(int.from_bytes(key[:8], "big"), {})[int.from_bytes(key[8:], "big")] = coldkey
    pool_ids = set()
    for key, raw in state.scan_values(POOL_PREFIX):
        pool = Pool(int.from_bytes(key, "big"), raw["netuid"], raw["hotkey"], raw["stake"],
                    int.from_bytes(raw["shares"], "big"), raw["count"])
        pool_ids.add(pool.id)
        where = f"pool {pool.id} (subnet {pool.netuid}, {format_address(pool.hotkey)})"
        named = live.get(pool.id)
        if (named is not None) == (pool.id in closing):
            return f"{where} is {'both open and closing' if named else 'neither open nor closing'}"
        if named is not None and named != neurons.netuid_bytes(pool.netuid) + pool.hotkey:
            return f"{where} is named by another subnet or hotkey"
        held = positions.get(pool.id, [])
        if pool.shares <= 0 or len(held) != pool.count or sorted(slots.get(pool.id, {})) != list(range(pool.count)):
            return f"{where}: {len(held)} positions and slots {sorted(slots.get(pool.id, {}))} for count {pool.count}"
        if any(slots[pool.id][slot] != coldkey or shares <= 0 for coldkey, shares, slot in held):
            return f"{where}: a position and its slot do not name each other, or hold no shares"
        if sum(shares for _, shares, _ in held) != pool.shares:
            return f"{where}: positions hold {sum(s for _, s, _ in held)} shares of {pool.shares}"
        worth = sum(pool.worth(shares) for _, shares, _ in held)
        if not worth <= pool.stake < worth + pool.count:
            return f"{where}: stake {pool.stake} against positions worth {worth}"
    strays = (set(live) | closing | set(positions) | set(slots)) - pool_ids
    return f"pools {sorted(strays)} are named but have no record" if strays else None


MODULE = ModuleSpec(
    name=NAME,
    events=(StakeReturned, StakeAdded, StakeRemoved, TakeSet),
    handlers={MsgAddStake: process_add, MsgRemoveStake: process_remove, MsgSetTake: process_set_take},
    end_block=return_closed_pools,
    queries={"stakes": query_stakes, "hotkey": query_hotkey, "params": GENESIS.query},
    validate_genesis=GENESIS.validate,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    invariants={"held": invariant_held, "totals": invariant_totals, "pools": invariant_pools},
)
