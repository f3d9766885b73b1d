"""escrow on its own: accounts whose deposit outlasts any block number a key can name."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import bank, escrow
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
