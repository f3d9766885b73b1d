from __future__ import annotations

import pytest

from gridmint.chain import bank, codec
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.state import BlockState, CommittedView
from tests.support.chain import FEE, MINT, START_BALANCE, Chain, balances, key, signed


def test_transfer_moves_funds_and_burns_the_fee(chain: Chain) -> None:
    (result,) = chain.block(signed(key("alice"), 1, MsgSend(key("carol").address, 3 * MINT)))
    assert result.code == 0
    assert balances(chain.app, "alice", "carol") == {"alice": START_BALANCE - 3 * MINT - FEE, "carol": 3 * MINT}
    supply = codec.decode(chain.app.query("/bank/supply").value)["supply"]
    assert supply == 2 * START_BALANCE - FEE
    assert chain.app.check_invariants() == []
    transfer = next(e for e in result.events if e.type == "transfer")
    assert dict(transfer.attributes) == {"sender": format_address(key("alice").address),
                                         "recipient": format_address(key("carol").address), "amount": str(3 * MINT)}


def test_spending_everything_deletes_the_balance_key(chain: Chain) -> None:
    (result,) = chain.block(signed(key("alice"), 1, MsgSend(key("bob").address, START_BALANCE - FEE)))
    assert result.code == 0
    assert chain.app.store.get(bank.BALANCE_PREFIX + key("alice").address) is None
    assert chain.app.check_invariants() == []


def test_hold_and_release_keep_the_supply_invariant(chain: Chain) -> None:
    chain.block()
    state = BlockState(chain.app.store)
    alice = key("alice").address
    bank.hold(state, alice, "example", 7 * MINT, "a deposit")
    assert bank.get_held(state, "example") == 7 * MINT
    with pytest.raises(ChainError) as caught:
        bank.hold(state, alice, "example", START_BALANCE, "a deposit")
    assert "insufficient funds for a deposit" in caught.value.message
    bank.release(state, "example", key("bob").address, 2 * MINT)
    with pytest.raises(RuntimeError):
        bank.release(state, "example", alice, 6 * MINT)
    chain.app.store.commit(2, state.writes, chain.app.store.digest_with(state.writes))
    assert chain.app.check_invariants() == []
    assert codec.decode(chain.app.query("/bank/supply").value)["held"] == {"example": 5 * MINT}


def test_the_invariant_notices_a_broken_supply(chain: Chain) -> None:
    chain.block()
    state = BlockState(chain.app.store)
    bank.credit(state, key("carol").address, 1)  # money from nowhere
    chain.app.store.commit(2, state.writes, chain.app.store.digest_with(state.writes))
    assert any("bank/supply" in problem for problem in chain.app.check_invariants())


def test_balance_query_and_bad_address(chain: Chain) -> None:
    chain.block()
    address = format_address(key("alice").address)
    assert codec.decode(chain.app.query(f"/bank/balance/{address}").value) == {"address": address,
                                                                              "balance": START_BALANCE}
    bad = chain.app.query("/bank/balance/gm1notanaddress")
    assert (bad.codespace, bad.code) == ("tx", 13)
    unknown = chain.app.query("/bank/nothing")
    assert (unknown.codespace, unknown.code) == ("query", 1)


def test_old_heights_are_queryable(chain: Chain) -> None:
    chain.block()
    chain.block(signed(key("alice"), 1, MsgSend(key("bob").address, MINT)))
    address = format_address(key("bob").address)
    assert codec.decode(chain.app.query(f"/bank/balance/{address}", height=1).value)["balance"] == START_BALANCE
    assert codec.decode(chain.app.query(f"/bank/balance/{address}").value)["balance"] == START_BALANCE + MINT
    assert chain.app.query(f"/bank/balance/{address}", height=9).codespace == "query"


def test_mint_and_burn_move_the_supply(chain: Chain) -> None:
    chain.block()
    state = BlockState(chain.app.store)
    bank.mint(state, key("carol").address, 5)
    bank.burn(state, key("carol").address, 2, "a test")
    assert bank.get_supply(state) == bank.get_supply(CommittedView(chain.app.store)) + 3
