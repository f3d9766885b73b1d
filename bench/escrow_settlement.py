"""Time per block that escrow spends closing exhausted leases, with 100 and with 10,000 active leases of which the
same number fall due in every block. The exhaustion queue should make the two nearly equal.

    .venv/bin/python bench/escrow_settlement.py [--due 10] [--blocks 50]

The last line is JSON: {"ms_per_block_100", "ms_per_block_10000", "ratio", ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from gridmint.chain import bank, escrow
from gridmint.chain.app import MODULES, App
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.genesis import make_genesis_document, validate_genesis
from gridmint.chain.state import BlockState
from gridmint.chain.store import Store

RATE = 1_000


def run(leases: int, due_per_block: int, blocks: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="gridmint-escrow-"))
    authority = PrivateKey(b"\x05" * 32)
    app = App(Store(folder / "state.sqlite"))
    app.init_chain(validate_genesis(make_genesis_document(
        "gridmint-bench", "2026-01-01T00:00:00Z", [("bench", authority.public_key)],
        [(format_address(authority.address), 10**9)]), MODULES))
    app.finalize_block([], 1, 10**18, authority.address)
    app.commit()
    # Open the leases directly in state: the first `blocks * due` run dry one batch per block, the rest later.
    state = BlockState(app.store)
    tenant, provider = b"\x01" * 20, b"\x02" * 20
    deposits = []
    for index in range(leases):
        if index < blocks * due_per_block:
            deposits.append((2 + index // due_per_block) * RATE)
        else:
            deposits.append(10**6 * RATE)
    bank.mint_held(state, "bench", sum(deposits))
    for deposit in deposits:
        escrow.open_account(state, "bench", tenant, provider, RATE, deposit, 1)
    app.store.commit(2, state.writes, app.store.digest_with(state.writes))

    timings: list[float] = []
    original = escrow.MODULE.end_block
    assert original is not None

    def timed(ctx):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        original(ctx)
        timings.append(time.perf_counter() - started)

    object.__setattr__(escrow.MODULE, "end_block", timed)
    try:
        for height in range(3, 3 + blocks):
            result = app.finalize_block([], height, 10**18 + height, authority.address)
            app.commit()
            closed = sum(1 for e in result.events if e.type == "escrow_exhausted")
            if height - 1 <= blocks and closed != due_per_block:
                raise SystemExit(f"block {height}: {closed} leases closed, expected {due_per_block}")
    finally:
        object.__setattr__(escrow.MODULE, "end_block", original)
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--due", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=50)
    args = parser.parse_args()
    small = run(100, args.due, min(args.blocks, 100 // args.due - 1))
    large = run(10_000, args.due, args.blocks)
    print(f"escrow time per block, {args.due} leases falling due per block:")
    print(f"  100 active leases   : {small:.3f} ms")
    print(f"  10,000 active leases: {large:.3f} ms")
    print(f"  ratio               : {large / small:.2f}")
    print(json.dumps({"ms_per_block_100": round(small, 4), "ms_per_block_10000": round(large, 4),
                      "ratio": round(large / small, 3), "due_per_block": args.due}))


if __name__ == "__main__":
    main()
