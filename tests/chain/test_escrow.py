"""escrow on its own: accounts whose deposit outlasts any block number a key can name, closures per block within
its parameter, and that parameter in genesis and export."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain import bank, codec, escrow, fees
from gridmint.chain.errors import ChainError
from gridmint.chain.module import BlockInfo, Context
from gridmint.chain.params import params_to_json
from gridmint.chain.state import BlockState, State
from gridmint.chain.store import Store
from gridmint.chain.units import MAX_U64
from tests.support.chain import Chain, genesis, make_app

TENANT, PROVIDER = b"\x01" * 20, b"\x02" * 20


def _funded_state(path: Path, grains: int) -> State:
    state = BlockState(Store(path / "state.sqlite"))
    bank.mint_held(state, "market", grains)
    return state


def test_a_deposit_that_outlasts_two_to_the_64_blocks_opens_and_closes(tmp_path: Path) -> None:
    deposit = 2**70  # at one grain a block it runs out after block 2^70, past what an 8-byte key can name
    state = _funded_state(tmp_path, deposit)
    account_id = escrow.open_account(state, "market", TENANT, PROVIDER, 1, deposit, 10)
    account = escrow.get_account(state, account_id)
    assert escrow.exhaustion_block(account) == 10 + deposit
    queued = [key for key, _ in state.scan(escrow.DUE_PREFIX)]
    assert queued == [escrow.DUE_PREFIX + MAX_U64.to_bytes(8, "big") + account_id.to_bytes(8, "big")]
    paid, refunded = escrow.close(state, account_id, 15, "tenant")
    assert (paid, refunded) == (5, deposit - 5)
    assert list(state.scan(escrow.DUE_PREFIX)) == []


@pytest.mark.parametrize("per_block", [escrow.Params().closures_per_block, 7])
def test_a_block_closes_at_most_its_share_of_accounts_and_a_late_closure_pays_the_same(tmp_path: Path,
                                                                                        per_block: int) -> None:
    """Tenants choose when deposits run out; many made to run out in one block are closed ``closures_per_block``
    a block, and each pays its provider exactly what it earned up to its exhaustion block."""
    count = 2 * per_block + 3
    state = _funded_state(tmp_path, 10 * count)
    if per_block != escrow.Params().closures_per_block:
        state.set_value(escrow.PARAMS_KEY, params_to_json(escrow.Params(closures_per_block=per_block)))
    ids = [escrow.open_account(state, "market", TENANT, PROVIDER, 2, 10, 100) for _ in range(count)]  # out at 105
    closed_per_block, reserved = [], []
    for height in (104, 105, 106, 107, 108):
        reserved.append(fees.get_reserved_units(state, height))  # what the block keeps from transactions
        ctx = Context(state, BlockInfo(height, 0, b"", "test"))
        escrow.end_block(ctx)
        closed_per_block.append(len(ctx.events))
    assert closed_per_block == [0, per_block, per_block, 3, 0]
    assert reserved == [closed * fees.ESCROW_CLOSURE for closed in closed_per_block]
    for account_id in ids:
        account = escrow.get_account(state, account_id)
        assert not account["open"] and account["closed_at"] == 105
    assert bank.get_balance(state, PROVIDER) == 10 * count  # every grain earned, none after exhaustion



def test_closures_per_block_is_a_bounded_genesis_parameter_that_export_keeps(tmp_path: Path) -> None:
    for bad in ({"params": {"closures_per_block": 0}}, {"params": {"closures_per_block": 1_001}},
                {"params": {"closures_per_block": "9"}}, {"params": {"speed": 1}}):
        with pytest.raises(ChainError) as refused:
            genesis(escrow=bad)
        assert refused.value.kind.name == "invalid_genesis" and "escrow.params" in refused.value.message
    assert genesis(escrow=None).modules["escrow"].params == escrow.Params()  # a section without params: defaults
    app = make_app(tmp_path, genesis(escrow={"params": {"closures_per_block": 42}}))
    Chain(app).block()
    assert codec.decode(app.query("/escrow/params").value) == {"closures_per_block": 42}
    assert app.export_genesis("2026-01-01T00:00:00Z")["app_state"]["escrow"] == {"params": {"closures_per_block": 42}}
