"""Two app instances fed the same blocks agree on every app hash over 5 epochs with random weights."""

from __future__ import annotations

import random
from pathlib import Path

from gridmint.chain.staking import MsgAddStake
from gridmint.chain.weights import MsgSetWeights
from tests.chain.incentive_network import build, hot
from tests.support.chain import MINT, key

VALIDATORS = {"v1": 500 * MINT, "v2": 300 * MINT, "v3": 200 * MINT}
MINERS = ("m1", "m2", "m3", "m4", "m5")


def test_epochs_agree_on_every_app_hash(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build(tmp_path / "a", VALIDATORS, MINERS)
    second = build(tmp_path / "b", VALIDATORS, MINERS)
    assert first.app.store.app_hash == second.app.store.app_hash
    rng = random.Random(99)
    hashes: list[bytes] = []
    start_epoch = first.subnet()["epoch"]
    while first.subnet()["epoch"] < start_epoch + 5:
        if rng.random() < 0.5:
            for validator in VALIDATORS:
                uids = [first.uid(m) for m in MINERS]
                weights = [rng.randrange(0, 65_536) for _ in MINERS]
                weights[0] = max(weights[0], 1)
                for net in (first, second):
                    net.send(hot(validator), MsgSetWeights(1, uids, weights))
        if rng.random() < 0.2:
            staker = rng.choice(list(VALIDATORS))
            stake = MsgAddStake(1, key(hot(staker)).address, rng.randrange(1, 50) * MINT)
            for net in (first, second):
                net.send(staker, stake)
        first.commit()
        second.commit()
        assert first.app.store.app_hash == second.app.store.app_hash, f"diverged at height {first.height}"
        hashes.append(first.app.store.app_hash)
    assert len(set(hashes)) == len(hashes)  # emission changes the state in every block
    assert first.vector("incentive") == second.vector("incentive") and sum(first.vector("incentive")) > 0
    assert first.app.check_invariants() == [] and second.app.check_invariants() == []
