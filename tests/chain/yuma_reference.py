"""A float reference of the Yuma epoch (tests only: chain/ never sees a float). Written from DESIGN.md's steps,
independently of chain/yuma.py, so that the fixed-point version is checked against plain arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridmint.chain.yuma import EpochInput


@dataclass
class ReferenceOutput:
    permit: np.ndarray
    stake_share: np.ndarray
    consensus: np.ndarray
    trust: np.ndarray
    incentive: np.ndarray
    dividends: np.ndarray
    bonds: dict[int, np.ndarray]


def reference_epoch(inputs: EpochInput) -> ReferenceOutput:
    n = len(inputs.stake)
    stake = np.array(inputs.stake, dtype=float)
    active = np.array([inputs.last_update[i] + inputs.activity_cutoff >= inputs.block for i in range(n)])
    order = sorted((i for i in range(n) if inputs.stake[i] > 0), key=lambda i: (-inputs.stake[i], i))
    permit = np.zeros(n, dtype=bool)
    permit[order[: inputs.max_validators]] = True
    active_stake = np.where(active & permit, stake, 0.0)
    share = active_stake / active_stake.sum() if active_stake.sum() > 0 else np.zeros(n)

    weights = np.zeros((n, n))
    for i in range(n):
        if not permit[i]:
            continue
        targets, values = inputs.weights.get(i, ([], []))
        for j, w in zip(targets, values, strict=True):
            if j != i and inputs.registered_at[j] < inputs.last_update[i]:
                weights[i, j] = w
        if weights[i].sum() > 0:
            weights[i] /= weights[i].sum()

    kappa = inputs.kappa / 65535
    consensus = np.zeros(n)
    for j in range(n):
        levels = sorted({weights[i, j] for i in range(n) if permit[i]}, reverse=True)
        for level in levels:
            if share[weights[:, j] >= level].sum() >= kappa - 1e-12 and share.sum() > 0:
                consensus[j] = level
                break
    clipped = np.minimum(weights, consensus[None, :])
    trust = clipped.sum(axis=1) * permit
    rank = share @ clipped
    incentive = rank / rank.sum() if rank.sum() > 0 else np.zeros(n)

    alpha = inputs.bonds_alpha / 65535
    bonds = np.zeros((n, n))
    for i, row in inputs.bonds.items():
        if permit[i] and len(row) == n:
            bonds[i] = np.array(row, dtype=float) / 2**30
    bonds = np.where(permit[:, None], bonds + alpha * (clipped - bonds), 0.0)
    column = bonds.sum(axis=0)
    shares = np.divide(bonds, column[None, :], out=np.zeros_like(bonds), where=column[None, :] > 0)
    dividends = share * (shares @ incentive)
    dividends = dividends / dividends.sum() if dividends.sum() > 0 else np.zeros(n)
    return ReferenceOutput(permit, share, consensus, trust, incentive, dividends,
                           {i: bonds[i] for i in range(n) if permit[i]})
