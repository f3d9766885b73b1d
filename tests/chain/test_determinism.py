"""Two independent apps fed the same blocks agree on the app hash at every height; a replay reproduces state."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from gridmint.chain.app import App
from gridmint.chain.authority import MsgPropose
from gridmint.chain.bank import MsgSend
from gridmint.chain.store import Store
from tests.support.chain import MINT, genesis, key, signed

NAMES = ("alice", "bob", "carol", "dave", "authority-0")


def random_blocks(seed: int, count: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    nonces = dict.fromkeys(NAMES, 0)
    blocks = []
    for _ in range(count):
        txs = []
        for _ in range(rng.randrange(0, 12)):
            sender = rng.choice(NAMES)
            roll = rng.random()
            if roll < 0.1:  # a stale or future nonce: refused
                txs.append(signed(key(sender), nonces[sender] + rng.choice((0, 2)), MsgSend(key("bob").address, 1)))
                continue
            nonces[sender] += 1
            if roll < 0.2:  # more than the balance: fails after the fee
                message = MsgSend(key(rng.choice(NAMES)).address, 10**6 * MINT)
            elif roll < 0.25:
                message = MsgPropose("add", key(f"new-{rng.randrange(3)}").public_key, rng.randrange(1, 20), "n")
            else:
                message = MsgSend(key(rng.choice(NAMES)).address, rng.randrange(1, 50 * MINT))
            txs.append(signed(key(sender), nonces[sender], message))
        blocks.append(txs)
    return blocks


def run(app: App, blocks: list[list[bytes]], start: int = 0) -> list[bytes]:
    hashes = []
    for offset, txs in enumerate(blocks):
        height = start + offset + 1
        result = app.finalize_block(txs, height, 10**18 + height * 10**9, key("authority-0").address)
        app.commit()
        assert app.store.app_hash == result.app_hash
        hashes.append(result.app_hash)
    return hashes


def fresh(path: Path) -> App:
    app = App(Store(path))
    app.init_chain(genesis(authorities=1, accounts=NAMES))
    return app


def test_two_apps_agree_at_every_height(tmp_path: Path) -> None:
    blocks = random_blocks(seed=7, count=60)
    first, second = fresh(tmp_path / "a.sqlite"), fresh(tmp_path / "b.sqlite")
    hashes = run(first, blocks)
    assert hashes == run(second, blocks)
    assert len(set(hashes)) > 40  # the hash does move with the state
    assert first.check_invariants() == []


def test_replay_of_the_block_log_reproduces_the_state(tmp_path: Path) -> None:
    blocks = random_blocks(seed=11, count=40)
    original = fresh(tmp_path / "a.sqlite")
    hashes = run(original, blocks[:25])
    original.store.close()
    reopened = App(Store(tmp_path / "a.sqlite"))  # a restart in the middle
    hashes += run(reopened, blocks[25:], start=25)
    replay = fresh(tmp_path / "replay.sqlite")
    assert run(replay, blocks) == hashes
    assert list(replay.store.all_pairs()) == list(reopened.store.all_pairs())
    assert np.array_equal(replay.store.recompute_digest(), replay.store.lanes)


def test_check_tx_never_changes_what_blocks_compute(tmp_path: Path) -> None:
    """The mempool's scratch state is separate: the same blocks give the same hashes with or without checks."""
    blocks = random_blocks(seed=3, count=20)
    checked, plain = fresh(tmp_path / "a.sqlite"), fresh(tmp_path / "b.sqlite")
    for txs in blocks:
        for raw in txs:
            checked.check_tx(raw)
    assert run(checked, blocks) == run(plain, blocks)
