from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain import authority, codec
from gridmint.chain.authority import MsgPropose, MsgVote
from gridmint.chain.errors import lookup
from gridmint.chain.state import CommittedView
from tests.support.chain import Chain, genesis, key, make_app, signed

NEWCOMER = key("newcomer")


def members(chain: Chain) -> list[bytes]:
    return [account for account, _ in authority.get_members(CommittedView(chain.app.store))]


@pytest.fixture
def four(tmp_path: Path) -> Chain:
    gen = genesis(authorities=4, accounts=("alice", "authority-0", "authority-1", "authority-2", "authority-3"))
    return Chain(make_app(tmp_path, gen))


def finalize(chain: Chain, *txs: bytes):  # type: ignore[no-untyped-def]
    chain.height += 1
    chain.time_ns += 10**9
    result = chain.app.finalize_block(list(txs), chain.height, chain.time_ns, key("authority-0").address)
    chain.app.commit()
    return result


def test_two_of_four_votes_do_not_pass_three_do(four: Chain) -> None:
    a0, a1, a2 = key("authority-0"), key("authority-1"), key("authority-2")
    result = finalize(four, signed(a0, 1, MsgPropose("add", NEWCOMER.public_key, 10, "newcomer")))
    assert result.tx_results[0].code == 0 and result.validator_updates == []
    result = finalize(four, signed(a1, 1, MsgVote(1)))
    assert result.tx_results[0].code == 0
    assert result.validator_updates == [], "2 of 4 is not more than two thirds"
    assert NEWCOMER.address not in members(four)
    result = finalize(four, signed(a2, 1, MsgVote(1)))
    assert result.tx_results[0].code == 0
    assert [(u.pub_key, u.power) for u in result.validator_updates] == [(NEWCOMER.public_key, 10)]
    assert NEWCOMER.address in members(four)
    assert len(members(four)) == 5


def test_removal_returns_power_zero(four: Chain) -> None:
    a0, a1, a2 = key("authority-0"), key("authority-1"), key("authority-2")
    target = key("authority-3")
    finalize(four, signed(a0, 1, MsgPropose("remove", target.public_key, 0, "")), signed(a1, 1, MsgVote(1)))
    result = finalize(four, signed(a2, 1, MsgVote(1)))
    assert [(u.pub_key, u.power) for u in result.validator_updates] == [(target.public_key, 0)]
    assert target.address not in members(four)


def test_only_authorities_vote_and_only_once(four: Chain) -> None:
    a0 = key("authority-0")
    result = finalize(four, signed(key("alice"), 1, MsgPropose("add", NEWCOMER.public_key, 10, "x")),
                      signed(a0, 1, MsgPropose("add", NEWCOMER.public_key, 10, "x")),
                      signed(a0, 2, MsgVote(1)), signed(key("authority-1"), 1, MsgVote(7)))
    names = [lookup(r.codespace, r.code).name if r.code else "ok" for r in result.tx_results]
    assert names == ["not_authority", "ok", "already_voted", "unknown_proposal"]


@pytest.fixture
def one(tmp_path: Path) -> Chain:
    return Chain(make_app(tmp_path, genesis(authorities=1, accounts=("authority-0",))))


def test_the_last_authority_cannot_be_removed(one: Chain) -> None:
    chain = one
    only = key("authority-0")
    (result,) = chain.block(signed(only, 1, MsgPropose("remove", only.public_key, 0, "")))
    assert lookup(result.codespace, result.code).name == "invalid_change"


def test_a_single_authority_passes_its_own_proposal_at_once(one: Chain) -> None:
    chain = one
    only = key("authority-0")
    chain.height += 1
    result = chain.app.finalize_block([signed(only, 1, MsgPropose("add", NEWCOMER.public_key, 5, "n"))],
                                      chain.height, chain.time_ns, only.address)
    chain.app.commit()
    assert [(u.pub_key, u.power) for u in result.validator_updates] == [(NEWCOMER.public_key, 5)]


def test_proposals_expire(tmp_path: Path) -> None:
    gen = genesis(authorities=4, accounts=("authority-0",))
    gen.modules["authority"] = authority.Genesis(authority.Params(voting_period=2), gen.modules["authority"].members)
    chain = Chain(make_app(tmp_path, gen))
    finalize(chain, signed(key("authority-0"), 1, MsgPropose("add", NEWCOMER.public_key, 10, "x")))
    finalize(chain)
    result = finalize(chain)
    assert any(e.type == "authority_proposal_expired" for e in result.events)
    answer = codec.decode(chain.app.query("/authority/proposals").value)
    assert answer == []


def test_init_chain_returns_the_genesis_set(tmp_path: Path) -> None:
    from gridmint.chain.app import App
    from gridmint.chain.store import Store

    app = App(Store(tmp_path / "s.sqlite"))
    validators, app_hash = app.init_chain(genesis(authorities=3))
    assert sorted(v.pub_key for v in validators) == sorted(key(f"authority-{i}").public_key for i in range(3))
    assert len(app_hash) == 32


def test_two_passing_proposals_for_one_key_in_one_block_give_one_update(four: Chain) -> None:
    """CometBFT halts on a block whose validator updates name a key twice: the last change wins."""
    a = [key(f"authority-{i}") for i in range(4)]
    result = finalize(four, signed(a[0], 1, MsgPropose("add", NEWCOMER.public_key, 5, "n")),
                      signed(a[1], 1, MsgVote(1)), signed(a[2], 1, MsgVote(1)),  # 3 of 4: added with power 5
                      signed(a[0], 2, MsgPropose("add", NEWCOMER.public_key, 7, "n")),
                      signed(a[1], 2, MsgVote(2)), signed(a[2], 2, MsgVote(2)), signed(a[3], 1, MsgVote(2)))  # 4 of 5
    assert [r.code for r in result.tx_results] == [0] * 7
    assert [e.type for e in result.tx_results[2].events + result.tx_results[6].events].count("authority_change") == 2
    assert [(u.pub_key, u.power) for u in result.validator_updates] == [(NEWCOMER.public_key, 7)]


def test_a_key_added_and_removed_in_one_block_is_not_sent_to_cometbft(four: Chain) -> None:
    """Removing a key CometBFT never had would halt it as surely as a duplicate: no update at all."""
    a = [key(f"authority-{i}") for i in range(4)]
    finalize(four)
    before = members(four)
    result = finalize(four, signed(a[0], 1, MsgPropose("add", NEWCOMER.public_key, 10, "n")),
                      signed(a[1], 1, MsgVote(1)), signed(a[2], 1, MsgVote(1)),  # 3 of 4: added
                      signed(a[0], 2, MsgPropose("remove", NEWCOMER.public_key, 0, "")),
                      signed(a[1], 2, MsgVote(2)), signed(a[2], 2, MsgVote(2)), signed(a[3], 1, MsgVote(2)))  # 4 of 5
    assert [r.code for r in result.tx_results] == [0] * 7
    assert members(four) == before
    assert result.validator_updates == []
