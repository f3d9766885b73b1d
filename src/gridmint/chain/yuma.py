"""Yuma consensus for one subnet epoch, in integer fixed point (vectorised with numpy int64, no floats).

Every fraction is a Q30 integer: one whole is ``ONE = 2**30``. Q30 keeps every product below 2**61: a stake share
(≤ 2**30) times a weight (≤ 2**30) summed over validators is at most ``ONE * ONE`` because the shares sum to
``ONE``. Divisions floor, and normalisations hand the floor's remainder to nobody (vectors may sum to a few
units less than ``ONE``); the emission module splits grains exactly with ``split_exactly``.

The steps follow DESIGN.md ("emission"):
1. active = updated within ``activity_cutoff``; permits = the top ``max_validators`` by stake (ties: lower
   UID); active stake = stake of active permit holders, normalised.
2. weights kept only from permit holders, without self-weights, and not older than the target's registration;
   each row normalised.
3. consensus C_j = the largest w such that validators holding ≥ κ of active stake gave miner j at least w.
4. clipped W̄ = min(W, C); validator trust T_i = Σ_j W̄_ij; rank R_j = Σ_i S_i W̄_ij; incentive I = R / ΣR.
5. bonds B ← B + α (W̄ − B) (an exponential moving average toward each validator's clipped weights);
   dividends D_i = S_i Σ_j (B_ij / Σ_k B_kj) I_j, normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ONE = 1 << 30
U16_MAX = 65_535

Vector = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.int64]
IntSequence = list[int] | npt.NDArray[np.integer]  # what the state holds: decoded lists or arrays from bytes


@dataclass(frozen=True)
class EpochInput:
    block: int
    stake: list[int]  # grains staked on each UID's hotkey
    last_update: list[int]  # block of each UID's last weights
    registered_at: list[int]  # block at which each UID's current hotkey registered
    weights: dict[int, tuple[IntSequence, IntSequence]]  # validator UID -> (target UIDs, u16 weights)
    bonds: dict[int, IntSequence]  # validator UID -> Q30 bond per UID (dense), from the previous epoch
    kappa: int  # u16: the share of active stake that defines consensus (32_767 is about half)
    bonds_alpha: int  # u16: the moving average's rate (6_554 is about a tenth)
    max_validators: int
    activity_cutoff: int  # blocks


@dataclass(frozen=True)
class EpochOutput:
    active: list[bool]
    permit: list[bool]
    stake_share: list[int]  # Q30, active stake normalised
    consensus: list[int]  # Q30
    trust: list[int]  # Q30, validator trust
    rank: list[int]  # Q30
    incentive: list[int]  # Q30
    dividends: list[int]  # Q30
    bonds: dict[int, Vector]  # validator UID -> Q30 bonds per UID (only validators with a permit)


def compute_permits(stake: list[int], max_validators: int) -> list[bool]:
    """The top ``max_validators`` UIDs by stake (non-zero stake only; ties go to the lower UID)."""
    ranked = sorted((uid for uid, amount in enumerate(stake) if amount > 0), key=lambda uid: (-stake[uid], uid))
    chosen = set(ranked[:max_validators])
    return [uid in chosen for uid in range(len(stake))]


def normalise(values: list[int]) -> list[int]:
    """Non-negative integers (any size) -> Q30 shares, floored; all zero stays all zero."""
    total = sum(values)
    if total == 0:
        return [0] * len(values)
    return [value * ONE // total for value in values]


def _normalise_rows(matrix: Matrix) -> Matrix:
    sums = matrix.sum(axis=1, dtype=np.int64)
    safe = np.where(sums > 0, sums, 1)
    return (matrix * ONE) // safe[:, None]


ROW_BITS = 13  # validator rows packed under each weight for sorting; bounds max_validators at 8,192


def _consensus(weights: Matrix, stake: Vector, kappa: int) -> Vector:
    """Per column, the largest weight that validators holding at least κ of the stake reach or exceed.

    Each column is sorted by keys ``weight << ROW_BITS | row``: unique keys make the order (and so the result)
    the same whatever sorting algorithm numpy picks on this CPU, and sorting values is faster than argsort.
    """
    rows, columns = weights.shape
    total = int(stake.sum())
    if total == 0 or rows == 0:
        return np.zeros(columns, dtype=np.int64)
    keys = (weights.T << ROW_BITS) | np.arange(rows, dtype=np.int64)[None, :]
    keys.sort(axis=1)
    keys = keys[:, ::-1]  # each miner's weights, largest first
    support = np.cumsum(stake[keys & ((1 << ROW_BITS) - 1)], axis=1, dtype=np.int64)
    reached = support * U16_MAX >= kappa * total  # exact: support / total >= kappa / 65535
    first = np.argmax(reached, axis=1)  # the last column of `support` always reaches, so argmax finds one
    return np.asarray(keys[np.arange(columns), first] >> ROW_BITS, dtype=np.int64)


def run_epoch(inputs: EpochInput) -> EpochOutput:
    n = len(inputs.stake)
    active = [inputs.last_update[uid] + inputs.activity_cutoff >= inputs.block for uid in range(n)]
    permit = compute_permits(inputs.stake, inputs.max_validators)
    validators = [uid for uid in range(n) if permit[uid]]
    stake_share = normalise([inputs.stake[uid] if active[uid] and permit[uid] else 0 for uid in range(n)])

    # The matrices hold one row per validator with a permit; columns are all UIDs.
    weights = np.zeros((len(validators), n), dtype=np.int64)
    registered_at = np.asarray(inputs.registered_at, dtype=np.int64)
    for row, uid in enumerate(validators):
        targets, values = inputs.weights.get(uid, ([], []))
        target_array = np.asarray(targets, dtype=np.int64)
        value_array = np.asarray(values, dtype=np.int64)
        keep = (target_array >= 0) & (target_array < n) & (target_array != uid)
        weights[row, target_array[keep]] = value_array[keep]
        stale = registered_at >= inputs.last_update[uid]  # set before the target's hotkey arrived
        weights[row, stale] = 0
    weights = _normalise_rows(weights)
    stake = np.asarray([stake_share[uid] for uid in validators], dtype=np.int64)

    consensus = _consensus(weights, stake, inputs.kappa)
    clipped = np.minimum(weights, consensus[None, :])
    trust = clipped.sum(axis=1, dtype=np.int64)
    rank = (stake @ clipped) >> 30 if len(validators) else np.zeros(n, dtype=np.int64)
    incentive = normalise(rank.tolist())

    alpha = inputs.bonds_alpha * ONE // U16_MAX
    bonds = np.zeros_like(clipped)
    for row, uid in enumerate(validators):
        previous = inputs.bonds.get(uid)
        if previous is not None and len(previous) == n:
            bonds[row] = np.asarray(previous, dtype=np.int64)
    bonds = bonds + ((alpha * (clipped - bonds)) >> 30)
    column_sums = bonds.sum(axis=0, dtype=np.int64)
    shares = (bonds * ONE) // np.where(column_sums > 0, column_sums, 1)[None, :]
    incentive_vector = np.asarray(incentive, dtype=np.int64)
    # Q60 (no shift): each row sums shares ≤ ONE times incentive summing to ONE, so it fits, and small
    # dividends keep their precision until the normalisation below (in Python integers).
    earned = shares @ incentive_vector if len(validators) else np.zeros(0, dtype=np.int64)
    dividends_by_row = normalise([int(stake[row]) * int(earned[row]) for row in range(len(validators))])

    per_uid = [0] * n
    trust_per_uid = [0] * n
    for row, uid in enumerate(validators):
        per_uid[uid] = dividends_by_row[row]
        trust_per_uid[uid] = int(trust[row])
    return EpochOutput(
        active=active,
        permit=permit,
        stake_share=stake_share,
        consensus=consensus.tolist(),
        trust=trust_per_uid,
        rank=rank.tolist(),
        incentive=incentive,
        dividends=per_uid,
        bonds={uid: bonds[row] for row, uid in enumerate(validators)},
    )


def split_exactly(total: int, shares: list[int]) -> list[int]:
    """Split ``total`` grains in proportion to ``shares`` so the parts add up to ``total`` exactly.

    Largest-remainder method: each part is floored, and the grains left over go one each to the largest
    remainders (ties: lower index). All-zero shares give all-zero parts (the caller decides where ``total`` goes).
    """
    weight = sum(shares)
    if weight == 0:
        return [0] * len(shares)
    parts = [total * share // weight for share in shares]
    left = total - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(total * shares[i] % weight), i))
    for index in by_remainder[:left]:
        parts[index] += 1
    return parts
