"""The shared subnet layout: bonds stored sparsely where they are sparse, read back dense."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridmint.chain import codec, neurons
from gridmint.chain.state import BlockState
from gridmint.chain.store import Store

BONDS_KEY = neurons.BONDS_PREFIX + neurons.netuid_bytes(1) + (3).to_bytes(2, "big")


@pytest.fixture
def state(tmp_path: Path) -> BlockState:
    return BlockState(Store(tmp_path / "s.sqlite"))


def _row(size: int, nonzero: dict[int, int]) -> np.ndarray:
    row = np.zeros(size, dtype=np.int64)
    for uid, bond in nonzero.items():
        row[uid] = bond
    return row


@pytest.mark.parametrize("nonzero", [1, 10, 600, 700, 1_024])
def test_bonds_read_back_as_written_whatever_their_encoding(state: BlockState, nonzero: int) -> None:
    rng = np.random.default_rng(nonzero)
    row = _row(1_024, {int(uid): int(rng.integers(1, 2**30)) for uid in rng.choice(1_024, nonzero, replace=False)})
    neurons.set_bonds(state, 1, 3, row)
    read = neurons.get_bonds(state, 1, 3)
    assert read is not None and read.dtype == np.uint32 and np.array_equal(read, row)
    stored = codec.decode_stored(state.writes[BONDS_KEY])
    assert isinstance(stored, dict if nonzero * 6 + 24 < 4 * 1_024 else bytes)
    assert len(state.writes[BONDS_KEY]) <= 4 * 1_024 + 8  # never more than the dense array (and its header)


def test_sparse_bonds_keep_their_size_and_cost_what_they_hold(state: BlockState) -> None:
    neurons.set_bonds(state, 1, 3, _row(4_096, {0: 5, 4_095: 2**30}))
    assert len(state.writes[BONDS_KEY]) < 64  # against 16 kB dense
    read = neurons.get_bonds(state, 1, 3)
    assert read is not None and len(read) == 4_096 and (int(read[0]), int(read[4_095])) == (5, 2**30)
    assert read[1:4_095].sum() == 0


def test_all_zero_bonds_are_deleted(state: BlockState) -> None:
    neurons.set_bonds(state, 1, 3, _row(8, {2: 7}))
    neurons.set_bonds(state, 1, 3, _row(8, {}))
    assert state.writes[BONDS_KEY] is None and neurons.get_bonds(state, 1, 3) is None


def test_bond_rows_are_dense_by_validator(state: BlockState) -> None:
    neurons.set_bonds(state, 1, 3, _row(16, {5: 9}))  # sparse
    neurons.set_bonds(state, 1, 1, np.arange(16, dtype=np.int64) + 1)  # dense
    neurons.set_bonds(state, 2, 0, _row(16, {1: 1}))  # another subnet
    rows = neurons.bond_rows(state, 1)
    assert [uid for uid, _ in rows] == [1, 3]
    assert np.array_equal(rows[0][1], np.arange(16) + 1) and np.array_equal(rows[1][1], _row(16, {5: 9}))


def test_an_epoch_stores_a_validators_few_bonds_sparsely_and_the_metagraph_shows_them_dense(tmp_path: Path) -> None:
    from tests.chain.incentive_network import build
    from tests.support.chain import MINT

    miners = tuple(f"m{i}" for i in range(20))
    net = build(tmp_path, {"v1": 300 * MINT}, miners)
    net.set_weights("v1", {"m3": 65_535})
    net.until_epoch()
    net.until_epoch()
    validator, miner = net.uid("v1"), net.uid("m3")
    key = neurons.BONDS_PREFIX + neurons.netuid_bytes(1) + validator.to_bytes(2, "big")
    stored = codec.decode_stored(net.app.store.get(key) or b"")
    assert isinstance(stored, dict) and stored["n"] == 21
    full = codec.decode(net.app.query("/subnets/1/metagraph", b"bonds").value)
    dense = np.frombuffer(full["bonds"][str(validator)], dtype="<u4")
    assert len(dense) == 21 and dense[miner] > 0 and int(dense.sum()) == int(dense[miner])
