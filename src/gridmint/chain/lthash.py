"""A homomorphic hash of a set of (key, value) pairs: LtHash with 1024 lanes of 16 bits.

The digest of a set is the lane-wise sum, modulo 2**16, of a 2048-byte SHAKE-256 expansion of each pair. Adding
or removing one pair is one expansion and one vector addition, so the app hash commits to the *whole* state
while a block costs time in proportion to what it changed, not to the size of the state. Its collision
resistance rests on the short integer solution lattice problem (Bellare-Micciancio; the same construction
secures Meta's and Solana's state digests). Integer numpy arrays only; wrap-around is the intended modulus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

LANES = 1024
LANE_DTYPE = np.uint16
DIGEST_BYTES = LANES * 2
_DOMAIN = b"gridmint/lthash16/v1"

Lanes = npt.NDArray[np.uint16]


def empty() -> Lanes:
    return np.zeros(LANES, dtype=LANE_DTYPE)


def element(key: bytes, value: bytes) -> Lanes:
    shake = hashlib.shake_256(_DOMAIN)
    shake.update(len(key).to_bytes(4, "big"))
    shake.update(key)
    shake.update(value)
    return np.frombuffer(shake.digest(DIGEST_BYTES), dtype="<u2").astype(LANE_DTYPE)


def combine(base: Lanes, added: Iterable[tuple[bytes, bytes]], removed: Iterable[tuple[bytes, bytes]]) -> Lanes:
    """``base`` plus the elements of ``added`` minus those of ``removed`` (a new array)."""
    result = base.copy()
    for key, value in added:
        result += element(key, value)
    for key, value in removed:
        result -= element(key, value)
    return result


def of_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> Lanes:
    """The digest of a whole set, computed from scratch (what ``combine`` must always agree with)."""
    return combine(empty(), pairs, ())


def checksum(lanes: Lanes) -> bytes:
    """The 32-byte app hash for a digest."""
    return hashlib.sha256(_DOMAIN + lanes.astype("<u2").tobytes()).digest()
