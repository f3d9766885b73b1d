"""The state that subnets, staking, weights and emission share: subnets, their UIDs, and per-UID vectors.

No messages live here; the modules that change this state do (``subnets``, ``staking``, ``weights``,
``emission``). Keeping the layout in one file lets each of them read the others' data without import cycles.

State keys (netuid: 2 bytes big-endian; uid: 2 bytes big-endian):
- ``subnets/net/<netuid>`` -> the subnet: owner, modality, name, lock, created_at, last_epoch, n (UIDs in use),
  burn (registration price base) and burn_block, and ``params`` (its hyperparameters).
- ``subnets/keys/<netuid>`` -> the neurons' keys packed in UID order: 20-byte hotkey then 20-byte coldkey
  (one value for the whole subnet, so a metagraph of thousands of UIDs reads one row, not thousands).
- ``subnets/endpoint/<netuid><uid>`` -> what a neuron announced: url, models, price_per_1k (in force),
  next_price_per_1k and next_price_at (a pending raise; 0 and 0 when none), protocol_version, block.
- ``subnets/hotkey/<netuid><hotkey>`` -> uid.
- ``subnets/owner/<hotkey>`` -> the coldkey that first registered the hotkey (a hotkey belongs to one coldkey).
- ``subnets/vec/<netuid>/<name>`` -> a packed little-endian int64 array with one entry per UID (see VECTORS).
- ``subnets/bonds/<netuid><uid>`` -> the Q30 bonds of a validator: a packed uint32 array, one per UID, or where
  fewer than about two thirds are nonzero ``{"n": UIDs, "uids": packed uint16, "bonds": packed uint32}`` holding
  only the nonzero ones (see ``set_bonds``).
- ``subnets/pending/<netuid>`` -> grains of emission accrued since the subnet's last epoch (held by ``emission``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from gridmint.chain.crypto import ADDRESS_BYTES, format_address
from gridmint.chain.state import Reader, State

# Re-exported: clients match refusals against them as neurons.SUBNET_NOT_FOUND, neurons.NOT_REGISTERED.
from gridmint.chain.subnets_errors import NOT_REGISTERED as NOT_REGISTERED
from gridmint.chain.subnets_errors import SUBNET_NOT_FOUND as SUBNET_NOT_FOUND

NAME = "subnets"

# Per-UID vectors. last_update and registered_at are blocks; stake is grains; the rest are epoch outputs in Q30
# (active and permit are 0 or 1; emission is grains paid at the last epoch).
VECTORS = ("last_update", "registered_at", "stake", "active", "permit", "consensus", "trust", "incentive",
           "dividends", "emission")

NET_PREFIX = b"subnets/net/"
KEYS_PREFIX = b"subnets/keys/"
ENDPOINT_PREFIX = b"subnets/endpoint/"
KEY_PAIR = 2 * ADDRESS_BYTES
HOTKEY_PREFIX = b"subnets/hotkey/"
OWNER_PREFIX = b"subnets/owner/"
VECTOR_PREFIX = b"subnets/vec/"
BONDS_PREFIX = b"subnets/bonds/"
PENDING_PREFIX = b"subnets/pending/"

IntArray = npt.NDArray[np.int64]
BondArray = npt.NDArray[np.uint32]
# A sparse bond row costs 2 bytes of UID and 4 of bond per nonzero entry, plus its map's keys (about 20 bytes).
SPARSE_PAIR_BYTES = 6
SPARSE_OVERHEAD_BYTES = 24


def netuid_bytes(netuid: int) -> bytes:
    return netuid.to_bytes(2, "big")


def endpoint_key(netuid: int, uid: int) -> bytes:
    return ENDPOINT_PREFIX + netuid_bytes(netuid) + uid.to_bytes(2, "big")


def get_subnet(state: Reader, netuid: int) -> dict[str, Any] | None:
    value = state.get_value(NET_PREFIX + netuid_bytes(netuid))
    return value if isinstance(value, dict) else None


def require_subnet(state: Reader, netuid: int) -> dict[str, Any]:
    subnet = get_subnet(state, netuid)
    if subnet is None:
        raise SUBNET_NOT_FOUND(f"subnet {netuid} does not exist; see `gridmint subnet list`")
    return subnet


def put_subnet(state: State, netuid: int, subnet: dict[str, Any]) -> None:
    state.set_value(NET_PREFIX + netuid_bytes(netuid), subnet)


def netuids(state: Reader) -> list[int]:
    return [int.from_bytes(key[len(NET_PREFIX):], "big") for key, _ in state.scan(NET_PREFIX)]


def packed_keys(state: Reader, netuid: int) -> bytes:
    value = state.get_value(KEYS_PREFIX + netuid_bytes(netuid), b"")
    return value if isinstance(value, bytes) else b""


def get_neuron(state: Reader, netuid: int, uid: int) -> dict[str, Any] | None:
    """``{"hotkey", "coldkey"}`` of a UID, or None past the last UID."""
    packed = packed_keys(state, netuid)
    start = uid * KEY_PAIR
    if start + KEY_PAIR > len(packed):
        return None
    return {"hotkey": packed[start:start + ADDRESS_BYTES], "coldkey": packed[start + ADDRESS_BYTES:start + KEY_PAIR]}


def set_neuron(state: State, netuid: int, uid: int, hotkey: bytes, coldkey: bytes) -> None:
    packed = bytearray(packed_keys(state, netuid))
    start = uid * KEY_PAIR
    if len(packed) < start + KEY_PAIR:
        packed.extend(bytes(start + KEY_PAIR - len(packed)))
    packed[start:start + KEY_PAIR] = hotkey + coldkey
    state.set_value(KEYS_PREFIX + netuid_bytes(netuid), bytes(packed))


def uid_of(state: Reader, netuid: int, hotkey: bytes) -> int | None:
    value = state.get_value(HOTKEY_PREFIX + netuid_bytes(netuid) + hotkey)
    return value if isinstance(value, int) else None


def require_uid(state: Reader, netuid: int, hotkey: bytes) -> int:
    uid = uid_of(state, netuid, hotkey)
    if uid is None:
        raise NOT_REGISTERED(f"hotkey {format_address(hotkey)} is not registered on subnet {netuid}")
    return uid


def hotkey_owner(state: Reader, hotkey: bytes) -> bytes | None:
    value = state.get_value(OWNER_PREFIX + hotkey)
    return value if isinstance(value, bytes) else None


def neurons(state: Reader, netuid: int) -> list[tuple[int, dict[str, Any]]]:
    packed = packed_keys(state, netuid)
    return [(uid, {"hotkey": packed[start:start + ADDRESS_BYTES],
                   "coldkey": packed[start + ADDRESS_BYTES:start + KEY_PAIR]})
            for uid, start in enumerate(range(0, len(packed), KEY_PAIR))]


def encoded_endpoints(state: Reader, netuid: int, size: int) -> list[bytes | None]:
    """What each UID announced, as the stored canonical bytes (None where nothing), in UID order; passing them
    on undecoded keeps a metagraph of thousands of endpoints cheap to serve."""
    prefix = ENDPOINT_PREFIX + netuid_bytes(netuid)
    found: list[bytes | None] = [None] * size
    for key, raw in state.scan(prefix):
        uid = int.from_bytes(key[len(prefix):], "big")
        if uid < size:
            found[uid] = raw
    return found


def get_vector(state: Reader, netuid: int, name: str, size: int) -> IntArray:
    """A per-UID vector, zero-padded or cut to ``size`` entries (a writable copy)."""
    raw = state.get_value(VECTOR_PREFIX + netuid_bytes(netuid) + b"/" + name.encode(), b"")
    stored = np.frombuffer(raw, dtype="<i8").astype(np.int64)
    vector = np.zeros(size, dtype=np.int64)
    count = min(size, len(stored))
    vector[:count] = stored[:count]
    return vector


def set_vector(state: State, netuid: int, name: str, vector: IntArray) -> None:
    state.set_value(VECTOR_PREFIX + netuid_bytes(netuid) + b"/" + name.encode(), vector.astype("<i8").tobytes())


def set_vector_entry(state: State, netuid: int, name: str, uid: int, value: int, size: int) -> None:
    vector = get_vector(state, netuid, name, size)
    vector[uid] = value
    set_vector(state, netuid, name, vector)


def _decode_bonds(value: Any) -> BondArray | None:
    """A stored bond row as a dense array: plain bytes are dense; ``{"n", "uids", "bonds"}`` is sparse."""
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype="<u4")
    if isinstance(value, dict):
        dense = np.zeros(value["n"], dtype="<u4")
        dense[np.frombuffer(value["uids"], dtype="<u2")] = np.frombuffer(value["bonds"], dtype="<u4")
        return dense
    return None


def get_bonds(state: Reader, netuid: int, uid: int) -> BondArray | None:
    """A validator's Q30 bonds, dense: one per UID the subnet had when they were written (None: no bonds)."""
    return _decode_bonds(state.get_value(BONDS_PREFIX + netuid_bytes(netuid) + uid.to_bytes(2, "big")))


def set_bonds(state: State, netuid: int, uid: int, bonds: IntArray | None) -> None:
    """Stored dense, or as (uid, bond) pairs of the nonzero entries where that is smaller: a validator that
    weighs a few miners of thousands keeps a few pairs. Either way ``get_bonds`` reads back the same array."""
    key = BONDS_PREFIX + netuid_bytes(netuid) + uid.to_bytes(2, "big")
    if bonds is None or not bonds.any():
        state.delete(key)
        return
    dense = bonds.astype("<u4")
    nonzero = np.flatnonzero(dense)
    if len(nonzero) * SPARSE_PAIR_BYTES + SPARSE_OVERHEAD_BYTES < len(dense) * 4:
        state.set_value(key, {"n": len(dense), "uids": nonzero.astype("<u2").tobytes(),
                              "bonds": dense[nonzero].tobytes()})
    else:
        state.set_value(key, dense.tobytes())


def bond_rows(state: Reader, netuid: int) -> list[tuple[int, BondArray]]:
    """Every validator's bonds on a subnet, dense, by UID."""
    prefix = BONDS_PREFIX + netuid_bytes(netuid)
    rows = []
    for key, value in state.scan_values(prefix):
        bonds = _decode_bonds(value)
        if bonds is not None:
            rows.append((int.from_bytes(key, "big"), bonds))
    return rows


def get_pending(state: Reader, netuid: int) -> int:
    return state.get_int(PENDING_PREFIX + netuid_bytes(netuid))


def set_pending(state: State, netuid: int, grains: int) -> None:
    state.set_int(PENDING_PREFIX + netuid_bytes(netuid), grains)
