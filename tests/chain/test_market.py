"""The market and escrow modules on the real app: the cheapest matching bid wins, a lease pays exactly
rate × blocks, a lease funded for N blocks closes in block N, and bad input changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import bank, escrow, fees
from gridmint.chain.bank import MsgSend
from gridmint.chain.errors import INVALID_GENESIS, ChainError, lookup
from gridmint.chain.market import (
    GENESIS,
    MsgAcceptBid,
    MsgBid,
    MsgCloseDeployment,
    MsgCloseLease,
    MsgCreateDeployment,
    MsgRegisterProvider,
    MsgTopUp,
    MsgWithdraw,
    Params,
    compute_hold,
    get_order,
)
from gridmint.chain.state import CommittedView
from gridmint.chain.tx import Msg, TxBody
from tests.support.chain import CHAIN_ID, FEE, MINT, Driver, balance, genesis, key, make_app

PRICE_A, PRICE_B = MINT, 3 * MINT // 2
MARKET = {"params": {"min_bond": MINT, "bid_deposit": MINT // 10, "max_bids": 5, "order_ttl": 50}}


def provider(gpu_model: str = "A100", gpus: int = 2, vram: int = 80) -> MsgRegisterProvider:
    return MsgRegisterProvider("https://provider.example", gpu_model, gpus, vram, 16_000, 64_000, 500_000, "eu",
                               ["datacenter"], 2 * MINT)


def deployment(deposit: int = 10 * MINT, gpu_models: tuple[str, ...] = ("A100",), gpus: int = 1,
               max_price: int = 2 * MINT) -> MsgCreateDeployment:
    return MsgCreateDeployment(2_000, 4_096, gpus, list(gpu_models), 40, max_price, b"\x01" * 32, deposit)


@pytest.fixture
def market(tmp_path: Path) -> Driver:
    net = Driver(make_app(tmp_path, genesis(accounts=("tenant", "prov_a", "prov_b", "stranger"), balance=1_000 * MINT,
                                            market=MARKET)))
    net.ok("prov_a", provider())
    net.ok("prov_b", provider("H100", 4, 80))
    return net


def open_lease(net: Driver, deposit: int = 10 * MINT) -> tuple[int, int]:
    net.ok("tenant", deployment(deposit, gpu_models=("A100", "H100")))
    order_id = 1
    net.ok("prov_a", MsgBid(order_id, PRICE_A))
    net.ok("prov_b", MsgBid(order_id, PRICE_B))
    net.ok("tenant", MsgAcceptBid(order_id, key("prov_a").address))
    return order_id, get_order(CommittedView(net.app.store), order_id)["lease"]


def test_the_cheapest_bid_wins_and_the_provider_gets_exactly_rate_times_blocks(market: Driver) -> None:
    before = {name: balance(market.app, name) for name in ("tenant", "prov_a", "prov_b")}
    _, lease = open_lease(market)
    start = market.height
    assert balance(market.app, "prov_b") == before["prov_b"] - FEE  # its bid deposit came back on acceptance
    market.advance(4)
    market.ok("tenant", MsgCloseLease(lease, 0))
    blocks = market.height - start
    paid = blocks * PRICE_A
    assert balance(market.app, "prov_a") == before["prov_a"] - FEE + paid
    assert balance(market.app, "tenant") == before["tenant"] - 3 * FEE - paid
    assert market.app.check_invariants() == []


def test_a_lease_funded_for_n_blocks_closes_in_block_n(market: Driver) -> None:
    n = 7
    before = {name: balance(market.app, name) for name in ("tenant", "prov_a")}
    _, lease = open_lease(market, deposit=n * PRICE_A)
    start = market.height
    market.advance(n - 1)
    assert escrow.get_account(CommittedView(market.app.store), lease)["open"]
    market.advance(1)
    account = escrow.get_account(CommittedView(market.app.store), lease)
    assert not account["open"] and account["reason"] == escrow.REASON_INSUFFICIENT_FUNDS
    assert account["closed_at"] == start + n == market.height
    gained = balance(market.app, "prov_a") - (before["prov_a"] - FEE)
    spent = (before["tenant"] - 2 * FEE) - balance(market.app, "tenant")  # two fees: deployment, acceptance
    assert gained == spent == n * PRICE_A  # nobody gains or loses a grain
    assert market.app.check_invariants() == []


def test_withdraw_and_top_up_move_the_exhaustion_block(market: Driver) -> None:
    _, lease = open_lease(market, deposit=5 * PRICE_A)
    market.advance(2)
    market.ok("prov_a", MsgWithdraw(lease))
    account = escrow.get_account(CommittedView(market.app.store), lease)
    first = escrow.exhaustion_block(account)
    market.ok("tenant", MsgTopUp(lease, 5 * PRICE_A))
    account = escrow.get_account(CommittedView(market.app.store), lease)
    assert escrow.exhaustion_block(account) == first + 5
    assert market.app.check_invariants() == []


# The fixture's deployment (2 CPUs, 4,096 MB, 1 GPU) under MARKET: (1,024 + 16,000 + 4,096 + 400,000) resource
# units × 50 blocks of order_ttl × hold_fee 1 for each bidder, for 5 bids.
HOLD_PER_BID = 421_120 * 50
HOLD = 5 * HOLD_PER_BID


def order(net: Driver, order_id: int) -> dict[str, Any]:
    return get_order(CommittedView(net.app.store), order_id)


def test_the_hold_deposit_is_priced_from_resources_and_duration() -> None:
    params = Params(max_bids=5, order_ttl=50, hold_fee=1)
    assert compute_hold(params, 2_000, 4_096, 1) == (HOLD_PER_BID, HOLD)
    assert compute_hold(params, 0, 0, 0) == (1_024 * 50, 5 * 1_024 * 50)  # an order for nothing still pays bids
    assert compute_hold(Params(max_bids=5, order_ttl=100, hold_fee=3), 2_000, 4_096, 1)[0] == 6 * HOLD_PER_BID
    assert compute_hold(Params(hold_fee=0), 2_000, 4_096, 1) == (0, 0)
    with pytest.raises(ChainError) as refused:
        GENESIS.validate({"params": {"hold_fee": 10**9 + 1}})
    assert refused.value.kind == INVALID_GENESIS and "hold_fee" in refused.value.message


def test_the_hold_deposit_is_taken_and_comes_back_in_full_when_a_lease_starts(market: Driver) -> None:
    before = balance(market.app, "tenant")
    market.ok("tenant", deployment())
    opened = order(market, 1)
    assert (opened["hold"], opened["hold_per_bid"], opened["hold_paid"]) == (HOLD, HOLD_PER_BID, 0)
    assert balance(market.app, "tenant") == before - FEE - 10 * MINT - HOLD
    assert market.app.check_invariants() == []
    market.ok("prov_a", MsgBid(1, PRICE_A))
    market.ok("tenant", MsgAcceptBid(1, key("prov_a").address))
    assert balance(market.app, "tenant") == before - 2 * FEE - 10 * MINT  # only the deposit stays, in escrow
    (started,) = [e for e in market.last["tenant"][0].events if e.type == "lease_started"]
    assert dict(started.attributes)["hold_returned"] == str(HOLD)
    assert order(market, 1)["hold_paid"] == 0
    assert market.app.check_invariants() == []


def test_an_order_that_expires_pays_each_bidder_its_share_of_the_hold(market: Driver) -> None:
    before = {name: balance(market.app, name) for name in ("tenant", "prov_a", "prov_b")}
    supply = bank.get_supply(CommittedView(market.app.store))
    market.ok("tenant", deployment(gpu_models=("A100", "H100")))
    market.ok("prov_a", MsgBid(1, PRICE_A))
    market.ok("prov_b", MsgBid(1, PRICE_B))
    market.advance(50)
    assert order(market, 1)["state"] == "expired" and order(market, 1)["hold_paid"] == 2 * HOLD_PER_BID
    assert balance(market.app, "tenant") == before["tenant"] - FEE - 2 * HOLD_PER_BID
    for name in ("prov_a", "prov_b"):  # bid deposit back, and paid more than the bid's fee
        assert balance(market.app, name) == before[name] - FEE + HOLD_PER_BID > before[name]
    assert bank.get_supply(CommittedView(market.app.store)) == supply - 3 * FEE  # nothing burned but fees
    assert market.app.check_invariants() == []


def test_an_order_closed_without_a_lease_pays_its_bidders_and_returns_the_rest(market: Driver) -> None:
    before = {name: balance(market.app, name) for name in ("tenant", "prov_a")}
    market.ok("tenant", deployment())
    market.ok("prov_a", MsgBid(1, PRICE_A))
    market.ok("tenant", MsgCloseDeployment(1))
    (closed,) = [e for e in market.last["tenant"][0].events if e.type == "order_closed"]
    assert dict(closed.attributes)["hold_paid"] == str(HOLD_PER_BID)
    assert dict(closed.attributes)["hold_returned"] == str(HOLD - HOLD_PER_BID)
    assert order(market, 1)["state"] == "closed" and order(market, 1)["hold_paid"] == HOLD_PER_BID
    assert balance(market.app, "tenant") == before["tenant"] - 2 * FEE - HOLD_PER_BID
    assert balance(market.app, "prov_a") == before["prov_a"] - FEE + HOLD_PER_BID
    assert market.app.check_invariants() == []


def test_an_order_nobody_bid_on_returns_its_whole_hold(market: Driver) -> None:
    before = balance(market.app, "tenant")
    market.ok("tenant", deployment())  # expires unbid
    market.ok("tenant", deployment())  # closed unbid
    market.ok("tenant", MsgCloseDeployment(2))
    market.advance(50)
    assert [order(market, i)["state"] for i in (1, 2)] == ["expired", "closed"]
    assert [order(market, i)["hold_paid"] for i in (1, 2)] == [0, 0]
    assert balance(market.app, "tenant") == before - 3 * FEE
    assert market.app.check_invariants() == []


def test_fake_orders_cost_their_sender_what_they_made_bidders_hold_and_the_bidders_are_paid(market: Driver) -> None:
    """The attack: N orders that every provider bids on and that never lease. Each costs its sender the hold
    share of every bid it drew (far more than its own fee), and each bidder comes out ahead of its bid fees."""
    n = 6
    providers = ("prov_a", "prov_b")
    before = {name: balance(market.app, name) for name in ("tenant", *providers)}
    for _ in range(n):
        market.send("tenant", deployment(gpu_models=("A100", "H100")))
    market.commit()
    for order_id in range(1, n + 1):
        for name in providers:
            market.send(name, MsgBid(order_id, PRICE_A))
    market.commit()
    market.advance(50)
    assert all(order(market, i)["state"] == "expired" for i in range(1, n + 1))
    cost = before["tenant"] - balance(market.app, "tenant")
    assert cost == n * (FEE + len(providers) * HOLD_PER_BID) >= n * len(providers) * HOLD_PER_BID
    for name in providers:
        gained = balance(market.app, name) - before[name]
        assert gained == n * (HOLD_PER_BID - FEE) > 0  # every bid fee repaid, and the capacity kept free
    assert bank.get_held(CommittedView(market.app.store), "market") == 4 * MINT  # only the two bonds remain
    assert market.app.check_invariants() == []


def module_state(net: Driver) -> list[tuple[bytes, bytes]]:
    view = CommittedView(net.app.store)
    return [pair for prefix in (b"market/", b"escrow/", b"bank/held/") for pair in view.scan(prefix)]


def refuse(net: Driver, name: str, msg: Msg, expected: str) -> None:
    before = module_state(net)
    net.send(name, msg)
    (result,) = net.commit()[name]
    kind = lookup(result.codespace, result.code)
    assert kind is not None and kind.name == expected, result.log
    assert module_state(net) == before


def test_bad_input_changes_nothing(market: Driver) -> None:
    market.ok("tenant", deployment(gpu_models=("TPU",)))  # nobody has one: bids are refused with the reason
    refuse(market, "prov_a", MsgBid(1, PRICE_A), "resources_mismatch")
    market.ok("tenant", deployment(deposit=10 * MINT))
    refuse(market, "prov_a", MsgBid(2, 3 * MINT), "bid_above_max")
    refuse(market, "stranger", MsgBid(2, PRICE_A), "not_provider")
    market.ok("prov_a", MsgBid(2, PRICE_A))
    refuse(market, "prov_a", MsgBid(2, PRICE_A), "already_bid")
    refuse(market, "stranger", MsgAcceptBid(2, key("prov_a").address), "not_tenant")
    refuse(market, "tenant", MsgAcceptBid(2, key("prov_b").address), "no_bid")
    market.ok("tenant", MsgAcceptBid(2, key("prov_a").address))
    refuse(market, "prov_b", MsgBid(2, PRICE_A), "order_not_open")  # leased: closed to bids
    lease = get_order(CommittedView(market.app.store), 2)["lease"]
    refuse(market, "stranger", MsgCloseLease(lease, 0), "not_party")
    market.advance(1)
    market.send("prov_a", MsgWithdraw(lease))
    market.send("prov_a", MsgWithdraw(lease))  # twice in one block: the second finds nothing earned
    first, second = market.commit()["prov_a"]
    assert first.code == 0 and lookup(second.codespace, second.code).name == "nothing_to_withdraw"  # type: ignore[union-attr]
    market.ok("tenant", MsgCloseLease(lease, 0))
    refuse(market, "tenant", MsgTopUp(lease, MINT), "account_closed")
    refuse(market, "tenant", MsgCloseLease(lease, 0), "account_closed")
    refuse(market, "tenant", deployment(deposit=MINT, max_price=2 * MINT), "deposit_too_low")
    refuse(market, "stranger", MsgCloseDeployment(1), "not_tenant")
    assert market.app.check_invariants() == []


def test_a_balance_that_cannot_cover_the_hold_deposit_is_refused_and_nothing_changes(market: Driver) -> None:
    spare = balance(market.app, "stranger") - 10 * MINT - HOLD + 1 - 2 * FEE  # one grain short, after both fees
    market.ok("stranger", MsgSend(key("tenant").address, spare))
    assert balance(market.app, "stranger") == 10 * MINT + HOLD - 1 + FEE
    refuse(market, "stranger", deployment(), "insufficient_funds")
    assert "hold deposit" in market.last["stranger"][0].log
    assert balance(market.app, "stranger") == 10 * MINT + HOLD - 1  # only the fee went
    assert market.app.check_invariants() == []


def test_orders_due_together_expire_a_budget_a_block_and_take_nothing_once_past_due(tmp_path: Path) -> None:
    """The attack: many orders made in one block, each with bids, all due in one later block. end_block ends at most
    ``expiries_per_block`` of them and their bids (the block reserved that work), the rest in the next block, each
    paying what an on-time expiry pays; an order past its expiry block takes no bid or close meanwhile."""
    params = {**MARKET["params"], "expiries_per_block": 6}  # two orders of two bids each a block
    net = Driver(make_app(tmp_path, genesis(accounts=("tenant", "prov_a", "prov_b"), balance=1_000 * MINT,
                                            market={"params": params})))
    net.ok("prov_a", provider())
    net.ok("prov_b", provider("H100", 4, 80))
    for _ in range(4):
        net.send("tenant", deployment(gpu_models=("A100", "H100")))
    net.commit()
    due = order(net, 1)["expires"]
    for order_id in range(1, 5):
        net.send("prov_a", MsgBid(order_id, PRICE_A))
        net.send("prov_b", MsgBid(order_id, PRICE_B))
    net.commit()
    while net.height + 1 < due:
        net.block()
    view = CommittedView(net.app.store)
    assert fees.get_reserved_units(view, due) == 6 * fees.BID_REFUND  # max(6, 1 + max_bids 5)
    net.block()
    assert [order(net, i)["state"] for i in range(1, 5)] == ["expired", "expired", "open", "open"]
    net.send("prov_a", MsgBid(3, PRICE_A))
    net.send("tenant", MsgCloseDeployment(4))
    results = net.commit()
    for result in (*results["prov_a"], *results["tenant"]):
        assert (result.codespace, result.code) == ("market", 3) and f"expired at block {due}" in result.log
    assert [order(net, i)["state"] for i in range(1, 5)] == ["expired"] * 4
    assert all(order(net, i)["hold_paid"] == 2 * HOLD_PER_BID for i in range(1, 5))  # late pays the same
    assert fees.get_reserved_units(CommittedView(net.app.store), net.height + 1) == 0
    assert net.app.check_invariants() == []


def test_ending_an_order_counts_its_bids_refunds_against_its_block(market: Driver) -> None:
    """The refunds were prepaid by the bids' fees, so the fee is flat; the block that does them counts them."""
    view = CommittedView(market.app.store)
    for message, flat in ((MsgCloseDeployment(1), 300), (MsgAcceptBid(1, key("prov_a").address), 500)):
        cost = fees.get_tx_cost(view, TxBody(CHAIN_ID, key("tenant").public_key, 1, 0, (message,), ""))
        assert cost.units == flat
        assert cost.block_units == fees.ENVELOPE_UNITS + flat + 5 * fees.BID_REFUND  # max_bids 5 in this genesis
