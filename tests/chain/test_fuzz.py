"""Fuzzing ``check_tx`` and ``finalize_block``: every random or mutated transaction is refused with an error code,
and the app hash never moves. (The RPC half is in tests/node/test_rpc_fuzz.py.)"""

from __future__ import annotations

import os

import pytest

from gridmint.chain.bank import MsgSend
from tests.support.chain import MINT, Chain, key, signed, snapshot
from tests.support.fuzzing import fuzz_cases

COUNT = 10_000


def fuzz(chain: Chain, count: int, seed: int) -> None:
    assert chain.block(signed(key("alice"), 1, MsgSend(key("bob").address, MINT)))[0].code == 0
    before = snapshot(chain.app)
    cases = list(fuzz_cases(count, seed))
    for raw in cases:
        result = chain.app.check_tx(raw)
        assert result.code != 0 and result.codespace, raw.hex()
    assert snapshot(chain.app) == before
    results = chain.block(*cases[:500])  # a block of garbage from a careless proposer
    assert all(r.code != 0 for r in results)
    assert (snapshot(chain.app)[0], snapshot(chain.app)[2]) == (before[0], before[2])
    assert chain.app.check_tx(signed(key("alice"), 2, MsgSend(key("bob").address, 1))).code == 0


def test_fuzzed_transactions_are_all_refused(chain: Chain) -> None:
    fuzz(chain, COUNT, seed=1)


@pytest.mark.long
@pytest.mark.skipif(not os.environ.get("GRIDMINT_LONG"), reason="long run: set GRIDMINT_LONG=1")
def test_fuzz_long_run(chain: Chain) -> None:
    fuzz(chain, 300_000, seed=int(os.environ.get("GRIDMINT_FUZZ_SEED", "2")))
