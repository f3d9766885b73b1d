"""Property: random stakes, unstakes, dividends, prunings and block ends on share pools never break the supply
(supply = Σ balances + Σ held), the pools' bookkeeping or the coldkey index; a refusal is always coded; no one's
stake falls but by their own unstake; each rounding goes against the one who acts, by under a share's worth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmint.chain import bank, emission, neurons, staking
from gridmint.chain.errors import ChainError
from gridmint.chain.module import BlockInfo, Context
from gridmint.chain.state import CommittedView, State, TxState
from tests.chain.incentive_network import Network, build, hot
from tests.support.chain import MINT, key

EXAMPLES = int(os.environ.get("GRIDMINT_PROPERTY_EXAMPLES", "1000")) // 4
STAKERS = ("v1", "alice", "bob", "carol")
TARGETS = ("v1", "v2")
MIN_STAKE = staking.Params().min_stake

grains = st.one_of(st.integers(1, 3 * MIN_STAKE), st.integers(MIN_STAKE, 40 * MINT))
operation = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(STAKERS), st.sampled_from(TARGETS), grains),
    st.tuples(st.just("remove"), st.sampled_from(STAKERS), st.sampled_from(TARGETS), grains),
    st.tuples(st.just("remove_all"), st.sampled_from(STAKERS), st.sampled_from(TARGETS), st.just(0)),
    st.tuples(st.just("dividend"), st.just(""), st.sampled_from(TARGETS), st.integers(1, 10 * MINT)),
    st.tuples(st.just("prune"), st.just(""), st.sampled_from(TARGETS), st.just(0)),
    st.tuples(st.just("end_block"), st.just(""), st.just(""), st.just(0)),
)


def positions(state: State) -> dict[tuple[bytes, int], int]:
    """Every position's worth, open or closing, by (coldkey, pool id)."""
    found = {}
    for raw_key, raw in state.scan_values(staking.POSITION_PREFIX):
        pool = staking._read_pool(state, int.from_bytes(raw_key[20:], "big"))
        assert pool is not None
        found[(raw_key[:20], pool.id)] = pool.worth(int.from_bytes(raw[0], "big"))
    return found


def broken(state: State) -> list[str]:
    checks = [*staking.MODULE.invariants.values(), *bank.MODULE.invariants.values(),
              *emission.MODULE.invariants.values()]
    return [problem for check in checks if (problem := check(state)) is not None]


def apply(net: Network, state: State, op: tuple[str, str, str, int]) -> tuple[str, Any]:
    kind, who, target, amount = op
    tx = TxState(state)
    block = BlockInfo(net.height + 1, net.time_ns, b"", net.app.chain_id)
    hotkey = key(hot(target)).address if target else b""
    signer = key(who).address if who else b""
    try:
        if kind == "add":
            staking.process_add(Context(tx, block, signer), staking.MsgAddStake(1, hotkey, amount))
        elif kind in ("remove", "remove_all"):
            if kind == "remove_all":
                amount = max(1, staking.get_stake(tx, 1, hotkey, signer))
            staking.process_remove(Context(tx, block, signer), staking.MsgRemoveStake(1, hotkey, amount))
        elif kind == "dividend":
            bank.mint_held(tx, "emission", amount)
            staking.pay_dividends(tx, 1, [(neurons.require_uid(tx, 1, hotkey), hotkey, amount)], "emission")
        elif kind == "prune":
            staking.unstake_all(tx, 1, neurons.require_uid(tx, 1, hotkey), hotkey, 0)
        else:
            staking.return_closed_pools(Context(tx, block))
    except ChainError as error:
        return "refused", error
    tx.apply()
    return "done", None


def test_share_pools_keep_every_grain(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT, "v2": 200 * MINT}, ("m1",), extra_accounts=STAKERS[1:])
    committed = CommittedView(net.app.store)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=st.lists(operation, min_size=1, max_size=30))
    def run(ops: list[tuple[str, str, str, int]]) -> None:
        state = State(committed)
        state.set_value(staking.PARAMS_KEY, {"min_stake": MIN_STAKE, "returns_per_block": 2})
        for op in ops:
            kind, who, target, amount = op
            before = positions(state)
            balance = bank.get_balance(state, key(who).address) if who else 0
            pool = staking.live_pool(state, 1, key(hot(target)).address) if target else None
            price = 0 if pool is None else -(-pool.stake // pool.shares)
            outcome, error = apply(net, state, op)
            assert broken(state) == [], (op, broken(state))
            after = positions(state)
            mine = {k for k in before if k[0] == (key(who).address if who else b"")}
            for position, worth in before.items():
                if kind == "end_block" or (kind in ("remove", "remove_all") and position in mine):
                    continue
                assert after.get(position, 0) >= worth, (op, position)  # no one loses by another's action
            if outcome == "refused":
                assert kind in ("add", "remove", "remove_all") and error.kind.name in (
                    "stake_below_minimum", "not_enough_stake", "insufficient_funds"), (op, error)
                assert after == before
            elif kind == "add":
                pool_id = staking.live_pool(state, 1, key(hot(target)).address).id  # type: ignore[union-attr]
                gained = after[(key(who).address, pool_id)] - before.get((key(who).address, pool_id), 0)
                assert amount - price - 1 <= gained <= amount  # buying rounds down, by under a share and a grain
                assert bank.get_balance(state, key(who).address) == balance - amount
            elif kind in ("remove", "remove_all"):
                returned = bank.get_balance(state, key(who).address) - balance
                assert returned >= amount if kind == "remove" else returned > 0

    run()
