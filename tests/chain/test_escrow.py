"""escrow on its own: accounts whose deposit outlasts any block number a key can name."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import bank, escrow
from gridmint.chain.module import BlockInfo, Context
from gridmint.chain.state import BlockState, State
from gridmint.chain.store import Store
from gridmint.chain.units import MAX_U64

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


def test_a_block_closes_at_most_its_share_of_accounts_and_a_late_closure_pays_the_same(tmp_path: Path) -> None:
    """Tenants choose when deposits run out; many made to run out in one block are closed a batch per block, and
    each pays its provider exactly what it earned up to its exhaustion block."""
    count = escrow.CLOSURES_PER_BLOCK + 100
    state = _funded_state(tmp_path, 10 * count)
    ids = [escrow.open_account(state, "market", TENANT, PROVIDER, 2, 10, 100) for _ in range(count)]  # out at 105
    closed_per_block = []
    for height in (105, 106, 107):
        ctx = Context(state, BlockInfo(height, 0, b"", "test"))
        escrow.end_block(ctx)
        closed_per_block.append(len(ctx.events))
    assert closed_per_block == [escrow.CLOSURES_PER_BLOCK, 100, 0]
    for account_id in ids:
        account = escrow.get_account(state, account_id)
        assert not account["open"] and account["closed_at"] == 105
    assert bank.get_balance(state, PROVIDER) == 10 * count  # every grain earned, none after exhaustion

