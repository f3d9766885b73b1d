"""weights: validators with a permit tell the chain how good each miner is.

With commit-reveal on (the default), a validator first commits ``SHA-256(codec([domain, netuid, hotkey, uids,
weights, salt]))`` and reveals the weights and salt ``reveal_period`` epochs later (not before, not after): weights
stay hidden until they can no longer be copied into the same epoch. With commit-reveal off, ``set_weights``
stores them directly, at most once every ``weights_rate_limit`` blocks. Revealed weights count from the block
of their commit, so a miner that registered after the commit gets nothing from them.

State:
- ``weights/w/<netuid 2B><uid 2B>`` -> [target uids as packed u16, weights as packed u16]
- ``weights/commit/<netuid 2B><uid 2B>`` -> {"hash": 32B, "epoch": int, "block": int}
- the per-UID ``last_update`` vector of neurons.py (the block the current weights were decided)
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import numpy as np

from gridmint.chain import codec, neurons
from gridmint.chain.errors import register
from gridmint.chain.fields import U16, Bytes32, u16_list
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.module_genesis import ModuleGenesis
from gridmint.chain.records import BYTES, INT, MAP, TUPLE, RecordKind
from gridmint.chain.state import Reader, State
from gridmint.chain.subnets import get_hyperparams
from gridmint.chain.tx import Msg, message

NAME = "weights"
MAX_WEIGHTS = 4_096
COMMIT_DOMAIN = "gridmint/weights/v1"

NO_PERMIT = register(NAME, 1, "no_permit")
LENGTH_MISMATCH = register(NAME, 2, "length_mismatch")
UNKNOWN_UID = register(NAME, 3, "unknown_uid")
DUPLICATE_UID = register(NAME, 4, "duplicate_uid")
TOO_FEW_WEIGHTS = register(NAME, 5, "too_few_weights")
WEIGHT_TOO_HIGH = register(NAME, 6, "weight_too_high")
RATE_LIMITED = register(NAME, 7, "rate_limited")
COMMIT_REVEAL_ON = register(NAME, 8, "commit_reveal_on")
COMMIT_REVEAL_OFF = register(NAME, 9, "commit_reveal_off")
NO_COMMIT = register(NAME, 10, "no_commit")
REVEAL_TOO_EARLY = register(NAME, 11, "reveal_too_early")
REVEAL_TOO_LATE = register(NAME, 12, "reveal_too_late")
REVEAL_MISMATCH = register(NAME, 13, "reveal_mismatch")
ALL_ZERO = register(NAME, 14, "all_zero")

WEIGHTS_PREFIX = b"weights/w/"
COMMIT_PREFIX = b"weights/commit/"


def _uid_suffix(netuid: int, uid: int) -> bytes:
    return neurons.netuid_bytes(netuid) + uid.to_bytes(2, "big")


def commit_hash(netuid: int, hotkey: bytes, uids: list[int], weights: list[int], salt: bytes) -> bytes:
    """What a validator commits; clients compute it with the same function."""
    return hashlib.sha256(codec.encode([COMMIT_DOMAIN, netuid, hotkey, uids, weights, salt])).digest()


def get_weights(state: Reader, netuid: int, uid: int) -> tuple[np.ndarray, np.ndarray] | None:
    value = state.get_value(WEIGHTS_PREFIX + _uid_suffix(netuid, uid))
    if value is None:
        return None
    return np.frombuffer(value[0], dtype="<u2"), np.frombuffer(value[1], dtype="<u2")


def weights_rows(state: Reader, netuid: int) -> list[tuple[int, Any]]:
    """(validator UID, [packed target uids, packed weights]) of every validator with weights on ``netuid``."""
    prefix = WEIGHTS_PREFIX + neurons.netuid_bytes(netuid)
    return [(int.from_bytes(key, "big"), value) for key, value in state.scan_values(prefix)]


def epoch_index(subnet: dict[str, Any]) -> int:
    return int(subnet["epoch"])


# --- events ----------------------------------------------------------------------------------------------


@event("weights_set")
class WeightsSet(EventData):
    """A validator set its weights."""

    netuid: int
    uid: int
    count: int


@event("weights_committed")
class WeightsCommitted(EventData):
    """A validator committed the hash of its weights."""

    netuid: int
    uid: int
    epoch: int


@event("weights_revealed")
class WeightsRevealed(EventData):
    """A validator revealed committed weights."""

    netuid: int
    uid: int
    count: int


# --- messages ----------------------------------------------------------------------------------------------


@message("weights/set")
class MsgSetWeights(Msg):
    netuid: U16
    uids: Annotated[list[int], u16_list(MAX_WEIGHTS)]
    weights: Annotated[list[int], u16_list(MAX_WEIGHTS)]


@message("weights/commit")
class MsgCommitWeights(Msg):
    netuid: U16
    hash: Bytes32


@message("weights/reveal")
class MsgRevealWeights(Msg):
    netuid: U16
    uids: Annotated[list[int], u16_list(MAX_WEIGHTS)]
    weights: Annotated[list[int], u16_list(MAX_WEIGHTS)]
    salt: Bytes32


def _validator(ctx: Context, netuid: int) -> tuple[dict[str, Any], int]:
    """The subnet and the signer's UID, if the signer is a registered hotkey with a validator permit."""
    subnet = neurons.require_subnet(ctx.state, netuid)
    uid = neurons.require_uid(ctx.state, netuid, ctx.signer)
    permit = neurons.get_vector(ctx.state, netuid, "permit", subnet["n"])
    if not permit[uid]:
        raise NO_PERMIT(f"UID {uid} on subnet {netuid} has no validator permit: permits go to the top "
                        f"{get_hyperparams(subnet).max_validators} stakes at each epoch")
    return subnet, uid


def check_weights(subnet: dict[str, Any], netuid: int, uids: list[int], weights: list[int]) -> None:
    hyper = get_hyperparams(subnet)
    size = subnet["n"]
    if len(uids) != len(weights):
        raise LENGTH_MISMATCH(f"{len(uids)} UIDs but {len(weights)} weights; give one weight per UID")
    unknown = [uid for uid in uids if uid >= size]
    if unknown:
        raise UNKNOWN_UID(f"UID {unknown[0]} does not exist on subnet {netuid} (it has {size} UIDs)")
    if len(set(uids)) != len(uids):
        duplicate = next(uid for uid in uids if uids.count(uid) > 1)
        raise DUPLICATE_UID(f"UID {duplicate} appears more than once")
    needed = min(hyper.min_allowed_weights, size)
    if sum(1 for w in weights if w > 0) < needed:
        raise TOO_FEW_WEIGHTS(f"subnet {netuid} needs non-zero weights for at least {needed} UIDs")
    total = sum(weights)
    if total == 0:
        raise ALL_ZERO("all weights are zero; give at least one UID a positive weight")
    heaviest = max(weights)
    if heaviest * 65_535 > hyper.max_weight_limit * total:
        raise WEIGHT_TOO_HIGH(f"one UID gets {heaviest * 100 // total}% of the weight; subnet {netuid} allows at "
                              f"most {hyper.max_weight_limit * 100 // 65_535}%")


def _store(state: State, netuid: int, subnet: dict[str, Any], uid: int, uids: list[int], weights: list[int],
           decided_at: int) -> None:
    state.set_value(WEIGHTS_PREFIX + _uid_suffix(netuid, uid),
                    [np.asarray(uids, dtype="<u2").tobytes(), np.asarray(weights, dtype="<u2").tobytes()])
    neurons.set_vector_entry(state, netuid, "last_update", uid, decided_at, subnet["n"])


def process_set(ctx: Context, msg: MsgSetWeights) -> None:
    subnet, uid = _validator(ctx, msg.netuid)
    hyper = get_hyperparams(subnet)
    if hyper.commit_reveal:
        raise COMMIT_REVEAL_ON(f"subnet {msg.netuid} uses commit-reveal: commit a hash, then reveal")
    check_weights(subnet, msg.netuid, msg.uids, msg.weights)
    last = int(neurons.get_vector(ctx.state, msg.netuid, "last_update", subnet["n"])[uid])
    registered = int(neurons.get_vector(ctx.state, msg.netuid, "registered_at", subnet["n"])[uid])
    if last > registered and ctx.block.height - last < hyper.weights_rate_limit:
        raise RATE_LIMITED(f"weights may be set once every {hyper.weights_rate_limit} blocks; next at block "
                           f"{last + hyper.weights_rate_limit}")
    _store(ctx.state, msg.netuid, subnet, uid, msg.uids, msg.weights, ctx.block.height)
    ctx.emit(WeightsSet(netuid=msg.netuid, uid=uid, count=len(msg.uids)))


def process_commit(ctx: Context, msg: MsgCommitWeights) -> None:
    subnet, uid = _validator(ctx, msg.netuid)
    if not get_hyperparams(subnet).commit_reveal:
        raise COMMIT_REVEAL_OFF(f"subnet {msg.netuid} has commit-reveal off: use set_weights")
    ctx.state.set_value(COMMIT_PREFIX + _uid_suffix(msg.netuid, uid),
                        {"hash": msg.hash, "epoch": epoch_index(subnet), "block": ctx.block.height})
    ctx.emit(WeightsCommitted(netuid=msg.netuid, uid=uid, epoch=epoch_index(subnet)))


def process_reveal(ctx: Context, msg: MsgRevealWeights) -> None:
    subnet, uid = _validator(ctx, msg.netuid)
    hyper = get_hyperparams(subnet)
    commit = ctx.state.get_value(COMMIT_PREFIX + _uid_suffix(msg.netuid, uid))
    if commit is None:
        raise NO_COMMIT(f"UID {uid} has no commit on subnet {msg.netuid} to reveal")
    due = commit["epoch"] + hyper.reveal_period
    now = epoch_index(subnet)
    if now < due:
        raise REVEAL_TOO_EARLY(f"this commit may be revealed in epoch {due}; it is epoch {now}")
    if now > due:
        raise REVEAL_TOO_LATE(f"this commit had to be revealed in epoch {due}; it is epoch {now}: commit again")
    if commit_hash(msg.netuid, ctx.signer, msg.uids, msg.weights, msg.salt) != commit["hash"]:
        raise REVEAL_MISMATCH("the revealed weights and salt do not hash to the commit")
    check_weights(subnet, msg.netuid, msg.uids, msg.weights)
    ctx.state.delete(COMMIT_PREFIX + _uid_suffix(msg.netuid, uid))
    _store(ctx.state, msg.netuid, subnet, uid, msg.uids, msg.weights, commit["block"])
    ctx.emit(WeightsRevealed(netuid=msg.netuid, uid=uid, count=len(msg.uids)))


# --- what subnets frees ----------------------------------------------------------------------------------


def clear_uid(state: State, netuid: int, uid: int, hotkey: bytes) -> None:
    """A pruned UID's weights and pending commit go with it: its next occupant starts with none."""
    state.delete(WEIGHTS_PREFIX + _uid_suffix(netuid, uid))
    state.delete(COMMIT_PREFIX + _uid_suffix(netuid, uid))


def clear_subnet(state: State, netuid: int) -> None:
    """A dissolved subnet's weights and commits, in key order."""
    for prefix in (WEIGHTS_PREFIX, COMMIT_PREFIX):
        for key, _ in list(state.scan(prefix + neurons.netuid_bytes(netuid))):
            state.delete(key)


RECORDS = (
    RecordKind(WEIGHTS_PREFIX, 4, TUPLE(BYTES(), BYTES())),
    RecordKind(COMMIT_PREFIX, 4, MAP(hash=BYTES(32), epoch=INT, block=INT)),
)
GENESIS = ModuleGenesis(NAME, records=RECORDS)

MODULE = ModuleSpec(
    name=NAME,
    events=(WeightsSet, WeightsCommitted, WeightsRevealed),
    handlers={MsgSetWeights: process_set, MsgCommitWeights: process_commit, MsgRevealWeights: process_reveal},
    validate_genesis=GENESIS.validate,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    uid_freed=clear_uid,
    subnet_dissolved=clear_subnet,
)
