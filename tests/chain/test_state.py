"""State views: a block's writes over committed state, read in key order."""

from __future__ import annotations

import random
from pathlib import Path

from gridmint.chain.state import BlockState
from gridmint.chain.store import Store


def test_a_limited_scan_is_the_start_of_the_full_one(tmp_path: Path) -> None:
    """Reader.scan's ``limit`` over a block's writes and deletions on top of committed state."""
    rng = random.Random(5)
    store = Store(tmp_path / "scan.sqlite")
    committed = {bytes([1, rng.randrange(256), rng.randrange(256)]): b"v" for _ in range(300)}
    store.commit(1, committed, store.digest_with(committed))
    for _ in range(50):
        state = BlockState(store)
        for key in rng.sample(sorted(committed), 40):
            state.delete(key)
        for _ in range(40):
            state.set(bytes([1, rng.randrange(256), rng.randrange(256)]), b"w")
        below = bytes([1, rng.randrange(256)])
        full = list(state.scan(b"\x01", below=below))
        for limit in (0, 1, 7, 50, 1000):
            assert list(state.scan(b"\x01", below=below, limit=limit)) == full[:limit]
