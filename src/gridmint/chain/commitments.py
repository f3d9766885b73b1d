"""commitments: what a registered hotkey binds itself to, once per epoch, so that nobody can revise it later.

A hotkey registered on a subnet commits a 32-byte hash and up to ``max_data_bytes`` bytes of data, at most once in
each epoch of that subnet (the rate limit: a second commitment in the same epoch is refused with
``already_committed``, never stored over the first). Validators of a prediction subnet commit the Merkle root of
the signed answers they received in the epoch, so a miner can prove its answer was counted and nobody, the validator
included, can swap an answer once outcomes are known; miners may commit the hash of an artifact.

History is bounded: each (subnet, hotkey) keeps its commitments of the last ``retention_epochs`` epochs. Each new
commitment deletes at most ``PRUNED_PER_COMMIT`` of the hotkey's expired ones, oldest first, so a commit's work is
flat and the number kept per (subnet, hotkey) never exceeds ``retention_epochs`` (a commit adds one entry only when
none has expired, and then the live ones, one per epoch of the window, number fewer than ``retention_epochs``).
A hotkey whose UID is pruned can no longer commit, so nothing would prune what it kept: its commitments on that
subnet, ``retention_epochs`` at most, are deleted with the UID (``uid_freed``). A dissolved subnet's may number
``max_uids × retention_epochs`` (262,144 at the caps and the default retention; 50-140 µs each with the block's
digest and commit on the 2-core reference machine), so dissolving only queues the subnet (``subnet_dissolved``)
and ``end_block`` deletes at most ``cleared_per_block`` of the queued subnets' commitments per block, lowest netuid
first; until then they can still be read (a netuid is never used again). Each commitment's flat price covers its
later deletion (two keys), as it covers the two that ``_prune`` deletes; the blocks that delete them in bulk count
the work (chain/fees.py): a registration pays for ``retention_epochs`` deletions, a dissolve for one block's
``cleared_per_block``, and while the queue is not empty every block reserves ``cleared_per_block`` of them.

State:
- ``commitments/params`` -> Params
- ``commitments/c/<netuid 2B><hotkey 20B><epoch 8B>`` -> {"hash": 32B, "data": bytes, "block": int}
- ``commitments/block/<netuid 2B><block 8B><hotkey 20B>`` -> epoch: the same commitments by the block that made
  them, for queries by height
- ``commitments/dissolved/<netuid 2B>`` -> b"": a dissolved subnet whose commitments are still being deleted
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from gridmint.chain import neurons
from gridmint.chain.crypto import ADDRESS_BYTES, format_address, parse_address
from gridmint.chain.errors import INVALID_FIELD, INVALID_GENESIS, ChainError, register
from gridmint.chain.fields import U16, Bytes32, address, bytes32, short_bytes, u16, u64
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.params import params_from_json, params_reader, params_to_json
from gridmint.chain.query_args import expect_args, parse_address_arg, parse_netuid, parse_page, parse_uint
from gridmint.chain.state import Reader, State
from gridmint.chain.tx import Msg, message
from gridmint.chain.units import MAX_U64

NAME = "commitments"

ALREADY_COMMITTED = register(NAME, 1, "already_committed")
DATA_TOO_LONG = register(NAME, 2, "data_too_long")

# The most data any commitment may carry, whatever the parameters say: the message's field check needs a fixed
# bound before a handler can read the parameters.
ABSOLUTE_MAX_DATA_BYTES = 1_024
PRUNED_PER_COMMIT = 2
PAGE_SIZE = 100


@dataclass(frozen=True)
class Params:
    max_data_bytes: int = 128  # a root, a model hash and a short URI fit
    retention_epochs: int = 64  # at tempo 360 and 1 s blocks, about six hours of epochs
    cleared_per_block: int = 512  # a dissolved subnet's commitments deleted per block: 37-70 ms


# A pruned UID's commitments, up to retention_epochs, go in its registration's block: at most 1,024 (50-140 ms).
BOUNDS = {"max_data_bytes": (0, ABSOLUTE_MAX_DATA_BYTES), "retention_epochs": (1, 1_024),
          "cleared_per_block": (1, 1_024)}  # with the other end-block queues: chain/fees.py

PARAMS_KEY = b"commitments/params"
COMMIT_PREFIX = b"commitments/c/"
BLOCK_PREFIX = b"commitments/block/"
DISSOLVED_PREFIX = b"commitments/dissolved/"


get_params = params_reader(PARAMS_KEY, Params)


def _hotkey_prefix(netuid: int, hotkey: bytes) -> bytes:
    return COMMIT_PREFIX + neurons.netuid_bytes(netuid) + hotkey


def _commit_key(netuid: int, hotkey: bytes, epoch: int) -> bytes:
    return _hotkey_prefix(netuid, hotkey) + epoch.to_bytes(8, "big")


def _block_key(netuid: int, block: int, hotkey: bytes) -> bytes:
    return BLOCK_PREFIX + neurons.netuid_bytes(netuid) + block.to_bytes(8, "big") + hotkey


def _split_commit_key(key: bytes) -> tuple[int, bytes, int]:
    """(netuid, hotkey, epoch) from a ``commitments/c/`` key."""
    rest = key[len(COMMIT_PREFIX):]
    return int.from_bytes(rest[:2], "big"), rest[2:2 + ADDRESS_BYTES], int.from_bytes(rest[2 + ADDRESS_BYTES:], "big")


def get_commitment(state: Reader, netuid: int, hotkey: bytes, epoch: int) -> dict[str, Any] | None:
    value = state.get_value(_commit_key(netuid, hotkey, epoch))
    return value if isinstance(value, dict) else None


# --- events ------------------------------------------------------------------------------------------------


@event("commitment")
class Committed(EventData):
    """A hotkey committed a hash (and data) for an epoch."""

    netuid: int
    uid: int
    hotkey: str
    epoch: int
    hash: str
    pruned: int


# --- messages ----------------------------------------------------------------------------------------------


@message("commitments/commit")
class MsgCommit(Msg):
    netuid: U16
    hash: Bytes32
    data: Annotated[bytes, short_bytes(ABSOLUTE_MAX_DATA_BYTES)]


def _delete(state: State, netuid: int, hotkey: bytes, epoch: int, block: int) -> None:
    state.delete(_commit_key(netuid, hotkey, epoch))
    state.delete(_block_key(netuid, block, hotkey))


def _prune(state: State, netuid: int, hotkey: bytes, epoch: int, retention: int) -> int:
    """Delete up to ``PRUNED_PER_COMMIT`` of the hotkey's commitments older than the retention window."""
    oldest_kept = epoch - retention + 1
    if oldest_kept <= 0:
        return 0
    prefix = _hotkey_prefix(netuid, hotkey)
    expired = list(state.scan(prefix, below=prefix + oldest_kept.to_bytes(8, "big"), limit=PRUNED_PER_COMMIT))
    for key, _ in expired:
        record = state.get_value(key)
        _delete(state, netuid, hotkey, _split_commit_key(key)[2], int(record["block"]))
    return len(expired)


def process_commit(ctx: Context, msg: MsgCommit) -> None:
    subnet = neurons.require_subnet(ctx.state, msg.netuid)
    uid = neurons.require_uid(ctx.state, msg.netuid, ctx.signer)
    params = get_params(ctx.state)
    if len(msg.data) > params.max_data_bytes:
        raise DATA_TOO_LONG(f"the commitment carries {len(msg.data)} bytes of data; at most "
                            f"{params.max_data_bytes} are kept")
    epoch = int(subnet["epoch"])
    earlier = get_commitment(ctx.state, msg.netuid, ctx.signer, epoch)
    if earlier is not None:
        raise ALREADY_COMMITTED(f"UID {uid} already committed in epoch {epoch} of subnet {msg.netuid} (block "
                                f"{earlier['block']}); a commitment cannot be revised: commit again next epoch")
    pruned = _prune(ctx.state, msg.netuid, ctx.signer, epoch, params.retention_epochs)
    ctx.state.set_value(_commit_key(msg.netuid, ctx.signer, epoch),
                        {"hash": msg.hash, "data": msg.data, "block": ctx.block.height})
    ctx.state.set_value(_block_key(msg.netuid, ctx.block.height, ctx.signer), epoch)
    ctx.emit(Committed(netuid=msg.netuid, uid=uid, hotkey=format_address(ctx.signer), epoch=epoch,
                       hash=msg.hash.hex(), pruned=pruned))


# --- what subnets frees ----------------------------------------------------------------------------------


def _delete_all(state: State, prefix: bytes, limit: int | None = None) -> int:
    """Delete the commitments under ``prefix`` (of ``commitments/c/``), the first ``limit`` in key order when given,
    each with its block index entry; returns how many."""
    found = list(state.scan(prefix, limit=limit))
    for key, _ in found:
        netuid, hotkey, epoch = _split_commit_key(key)
        record = state.get_value(key)
        _delete(state, netuid, hotkey, epoch, int(record["block"]))
    return len(found)


def clear_uid(state: State, netuid: int, uid: int, hotkey: bytes) -> None:
    """The commitments of a hotkey whose UID was pruned: it cannot commit again there, so nothing else would."""
    _delete_all(state, _hotkey_prefix(netuid, hotkey))


def queue_subnet(state: State, netuid: int) -> None:
    """A dissolved subnet's commitments are deleted by ``end_block``, ``cleared_per_block`` at a time."""
    state.set(DISSOLVED_PREFIX + neurons.netuid_bytes(netuid), b"")


def is_clearing(state: Reader) -> bool:
    """Whether dissolved subnets' commitments wait to be deleted (each block then reserves the work: fees.py)."""
    return any(True for _ in state.scan(DISSOLVED_PREFIX, limit=1))


def clear_dissolved(ctx: Context) -> None:
    """End of block: delete up to ``cleared_per_block`` commitments of dissolved subnets, lowest netuid first; a
    subnet leaves the queue once none of its commitments is left."""
    budget = get_params(ctx.state).cleared_per_block
    for key, _ in list(ctx.state.scan(DISSOLVED_PREFIX)):
        prefix = COMMIT_PREFIX + key[len(DISSOLVED_PREFIX):]
        budget -= _delete_all(ctx.state, prefix, limit=budget)
        if any(True for _ in ctx.state.scan(prefix, limit=1)):
            return  # the budget ran out first: the next block goes on
        ctx.state.delete(key)
        if budget == 0:
            return


# --- queries -----------------------------------------------------------------------------------------------


def _shown(netuid: int, hotkey: bytes, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
    return {"netuid": netuid, "hotkey": format_address(hotkey), "epoch": epoch, "hash": record["hash"],
            "data": record["data"], "block": record["block"]}


def query_hotkey(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/commitments/hotkey/<netuid>/<hotkey>``: the hotkey's kept commitments on the subnet, oldest first."""
    netuid_text, hotkey_text = expect_args(parts, 2, "/commitments/hotkey/<netuid>/<hotkey>")
    netuid, hotkey = parse_netuid(netuid_text), parse_address_arg("hotkey", hotkey_text)
    return [_shown(netuid, hotkey, int.from_bytes(suffix, "big"), record)
            for suffix, record in state.scan_values(_hotkey_prefix(netuid, hotkey))]


def query_epoch(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/commitments/epoch/<netuid>/<hotkey>/<epoch>``: one commitment, or None."""
    netuid_text, hotkey_text, epoch_text = expect_args(parts, 3, "/commitments/epoch/<netuid>/<hotkey>/<epoch>")
    netuid, hotkey = parse_netuid(netuid_text), parse_address_arg("hotkey", hotkey_text)
    epoch = parse_uint("epoch", epoch_text, MAX_U64)
    record = get_commitment(state, netuid, hotkey, epoch)
    return None if record is None else _shown(netuid, hotkey, epoch, record)


def query_block(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/commitments/block/<netuid>/<height>``: the commitments made on the subnet in block ``height``."""
    netuid_text, height_text = expect_args(parts, 2, "/commitments/block/<netuid>/<height>")
    netuid, height = parse_netuid(netuid_text), parse_uint("height", height_text, MAX_U64)
    prefix = BLOCK_PREFIX + neurons.netuid_bytes(netuid) + height.to_bytes(8, "big")
    answer = []
    for hotkey, epoch in state.scan_values(prefix):
        record = get_commitment(state, netuid, hotkey, int(epoch))
        if record is not None:
            answer.append(_shown(netuid, hotkey, int(epoch), record))
    return answer


def query_subnet(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/commitments/subnet/<netuid>`` with data ``page=<n>``: the subnet's kept commitments by hotkey then
    epoch, ``PAGE_SIZE`` a page."""
    (netuid_text,) = expect_args(parts, 1, "/commitments/subnet/<netuid>")
    netuid, page = parse_netuid(netuid_text), parse_page(data)
    prefix = COMMIT_PREFIX + neurons.netuid_bytes(netuid)
    rows = []
    for index, (key, raw) in enumerate(state.scan(prefix, limit=(page + 1) * PAGE_SIZE)):
        if index >= page * PAGE_SIZE:
            rows.append((key, raw))
    answer = []
    for key, _ in rows:
        _, hotkey, epoch = _split_commit_key(key)
        answer.append(_shown(netuid, hotkey, epoch, state.get_value(key)))
    return answer


def query_params(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/commitments/params")
    return params_to_json(get_params(state))


# --- genesis -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Genesis:
    params: Params
    commitments: tuple[tuple[int, bytes, int, bytes, bytes, int], ...]  # (netuid, hotkey, epoch, hash, data, block)
    dissolved: tuple[int, ...] = ()  # netuids whose commitments are still being deleted


_ENTRY_FIELDS = {"netuid", "hotkey", "epoch", "hash", "data", "block"}


def _genesis_entry(where: str, entry: Any, params: Params) -> tuple[int, bytes, int, bytes, bytes, int]:
    if not isinstance(entry, dict) or set(entry) != _ENTRY_FIELDS:
        raise INVALID_GENESIS(f"{where}: expected an object with {sorted(_ENTRY_FIELDS)}")
    try:
        netuid = u16(f"{where}.netuid", entry["netuid"])
        hotkey = address(f"{where}.hotkey", _address(f"{where}.hotkey", entry["hotkey"]))
        epoch = u64(f"{where}.epoch", entry["epoch"])
        block = u64(f"{where}.block", entry["block"])
        hash_ = bytes32(f"{where}.hash", _hex(f"{where}.hash", entry["hash"]))
        data = _hex(f"{where}.data", entry["data"])
    except ChainError as exc:
        raise INVALID_GENESIS(exc.message) from None
    if len(data) > params.max_data_bytes:
        raise INVALID_GENESIS(f"{where}.data: {len(data)} bytes; params.max_data_bytes allows {params.max_data_bytes}")
    return netuid, hotkey, epoch, hash_, data, block


def _address(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise INVALID_FIELD(f"{name}: expected a gm1... address")
    return parse_address(value)


def _hex(name: str, value: Any) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * ABSOLUTE_MAX_DATA_BYTES:
        raise INVALID_FIELD(f"{name}: expected hexadecimal text of at most {ABSOLUTE_MAX_DATA_BYTES} bytes")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise INVALID_FIELD(f"{name}: '{value[:40]}' is not hexadecimal") from None


def _dissolved(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list):
        raise INVALID_GENESIS("commitments.dissolved: expected a list of netuids")
    try:
        netuids = [u16(f"commitments.dissolved[{index}]", netuid) for index, netuid in enumerate(raw)]
    except ChainError as exc:
        raise INVALID_GENESIS(exc.message) from None
    if netuids != sorted(set(netuids)):
        raise INVALID_GENESIS("commitments.dissolved: expected netuids in increasing order, each once")
    return tuple(netuids)


def validate_genesis(raw: Any) -> Genesis:
    if not isinstance(raw, dict) or set(raw) - {"params", "commitments", "dissolved"}:
        raise INVALID_GENESIS("commitments: expected {\"params\": {...}, \"commitments\": [...], "
                              "\"dissolved\": [...]}")
    params = params_from_json(Params, "commitments.params", raw.get("params", {}), BOUNDS)
    entries = raw.get("commitments", [])
    if not isinstance(entries, list):
        raise INVALID_GENESIS("commitments.commitments: expected a list")
    checked = [_genesis_entry(f"commitments.commitments[{index}]", entry, params)
               for index, entry in enumerate(entries)]
    seen: set[tuple[int, bytes, int]] = set()
    kept: dict[tuple[int, bytes], int] = {}
    for index, (netuid, hotkey, epoch, *_rest) in enumerate(checked):
        if (netuid, hotkey, epoch) in seen:
            raise INVALID_GENESIS(f"commitments.commitments[{index}]: a second commitment by the same hotkey on "
                                  f"subnet {netuid} in epoch {epoch}")
        seen.add((netuid, hotkey, epoch))
        kept[(netuid, hotkey)] = kept.get((netuid, hotkey), 0) + 1
        if kept[(netuid, hotkey)] > params.retention_epochs:
            raise INVALID_GENESIS(f"commitments.commitments[{index}]: more commitments by one hotkey on subnet "
                                  f"{netuid} than params.retention_epochs ({params.retention_epochs}) keeps")
    return Genesis(params, tuple(sorted(checked)), _dissolved(raw.get("dissolved", [])))


def init_genesis(state: State, genesis: Genesis) -> None:
    state.set_value(PARAMS_KEY, params_to_json(genesis.params))
    for netuid, hotkey, epoch, hash_, data, block in genesis.commitments:
        state.set_value(_commit_key(netuid, hotkey, epoch), {"hash": hash_, "data": data, "block": block})
        state.set_value(_block_key(netuid, block, hotkey), epoch)
    for netuid in genesis.dissolved:
        queue_subnet(state, netuid)


def export_genesis(state: Reader) -> Any:
    entries = []
    for key, record in state.scan_values(COMMIT_PREFIX):
        netuid, hotkey, epoch = _split_commit_key(COMMIT_PREFIX + key)
        entries.append({"netuid": netuid, "hotkey": format_address(hotkey), "epoch": epoch,
                        "hash": record["hash"].hex(), "data": record["data"].hex(), "block": record["block"]})
    dissolved = [int.from_bytes(key[len(DISSOLVED_PREFIX):], "big") for key, _ in state.scan(DISSOLVED_PREFIX)]
    section = {"params": params_to_json(get_params(state)), "commitments": entries}
    return {**section, "dissolved": dissolved} if dissolved else section


# --- invariants --------------------------------------------------------------------------------------------


def invariant_indexed(state: Reader) -> str | None:
    """Every commitment is listed under its block, and every block entry names a commitment."""
    by_commit = sorted((netuid, int(record["block"]), hotkey, epoch)
                       for netuid, hotkey, epoch, record in _commitments(state))
    by_block = []
    for suffix, epoch in state.scan_values(BLOCK_PREFIX):
        netuid, block = int.from_bytes(suffix[:2], "big"), int.from_bytes(suffix[2:10], "big")
        by_block.append((netuid, block, suffix[10:], int(epoch)))
    if by_commit != sorted(by_block):
        return f"{len(by_commit)} commitments but {len(by_block)} block index entries, or they differ"
    return None


def invariant_bounded(state: Reader) -> str | None:
    """No (subnet, hotkey) keeps more than ``retention_epochs`` commitments."""
    retention = get_params(state).retention_epochs
    counts: dict[tuple[int, bytes], int] = {}
    for netuid, hotkey, _, _ in _commitments(state):
        counts[(netuid, hotkey)] = counts.get((netuid, hotkey), 0) + 1
    over = sorted(pair for pair, count in counts.items() if count > retention)
    if over:
        netuid, hotkey = over[0]
        return f"{format_address(hotkey)} keeps {counts[over[0]]} commitments on subnet {netuid}, over {retention}"
    return None


def invariant_queued(state: Reader) -> str | None:
    """Only dissolved subnets wait for their commitments to be deleted."""
    for key, _ in state.scan(DISSOLVED_PREFIX):
        netuid = int.from_bytes(key[len(DISSOLVED_PREFIX):], "big")
        if neurons.get_subnet(state, netuid) is not None:
            return f"subnet {netuid} exists but is queued as dissolved"
    return None


def invariant_owned(state: Reader) -> str | None:
    """Every commitment is its hotkey's on a subnet where it holds a UID, or waits in the dissolved queue; and
    every queued netuid was used (``subnets/next_netuid`` passed it), so the queue never clears a subnet created
    later. A genesis that breaks this would credit a later registrant with commitments it never made, or delete
    a new subnet's."""
    from gridmint.chain.subnets import NEXT_NETUID_KEY  # subnets reads its own modules lazily; this one too

    used_through = state.get_int(NEXT_NETUID_KEY)
    queued = {int.from_bytes(key[len(DISSOLVED_PREFIX):], "big") for key, _ in state.scan(DISSOLVED_PREFIX)}
    for netuid in sorted(queued):
        if netuid > used_through:
            return f"subnet {netuid} is queued as dissolved but no subnet above {used_through} was ever created"
    for netuid, hotkey, epoch, _ in _commitments(state):
        if netuid not in queued and neurons.uid_of(state, netuid, hotkey) is None:
            return (f"{format_address(hotkey)} keeps a commitment on subnet {netuid} (epoch {epoch}) without a UID "
                    "there, and the subnet is not queued as dissolved")
    return None


def _commitments(state: Reader) -> list[tuple[int, bytes, int, dict[str, Any]]]:
    found = []
    for suffix, record in state.scan_values(COMMIT_PREFIX):
        netuid, hotkey, epoch = _split_commit_key(COMMIT_PREFIX + suffix)
        found.append((netuid, hotkey, epoch, record))
    return found


MODULE = ModuleSpec(
    name=NAME,
    events=(Committed,),
    handlers={MsgCommit: process_commit},
    queries={"hotkey": query_hotkey, "epoch": query_epoch, "block": query_block, "subnet": query_subnet,
             "params": query_params},
    validate_genesis=validate_genesis,
    init_genesis=init_genesis,
    export_genesis=export_genesis,
    end_block=clear_dissolved,
    invariants={"indexed": invariant_indexed, "bounded": invariant_bounded, "queued": invariant_queued,
                "owned": invariant_owned},
    uid_freed=clear_uid,
    subnet_dissolved=queue_subnet,
)

