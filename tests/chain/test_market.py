"""The market and escrow modules on the real app: the cheapest matching bid wins, a lease pays exactly
rate × blocks, a lease funded for N blocks closes in block N, and bad input changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain import bank, escrow
from gridmint.chain.errors import lookup
from gridmint.chain.market import (
    MsgAcceptBid,
    MsgBid,
    MsgCloseDeployment,
    MsgCloseLease,
    MsgCreateDeployment,
    MsgRegisterProvider,
    MsgTopUp,
    MsgWithdraw,
    get_order,
)
from gridmint.chain.state import CommittedView
from gridmint.chain.tx import Msg
from tests.helpers import FEE, MINT, Driver, genesis, key, make_app

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


def balance(net: Driver, name: str) -> int:
    return bank.get_balance(CommittedView(net.app.store), key(name).address)


def open_lease(net: Driver, deposit: int = 10 * MINT) -> tuple[int, int]:
    net.ok("tenant", deployment(deposit, gpu_models=("A100", "H100")))
    order_id = 1
    net.ok("prov_a", MsgBid(order_id, PRICE_A))
    net.ok("prov_b", MsgBid(order_id, PRICE_B))
    net.ok("tenant", MsgAcceptBid(order_id, key("prov_a").address))
    return order_id, get_order(CommittedView(net.app.store), order_id)["lease"]


def test_the_cheapest_bid_wins_and_the_provider_gets_exactly_rate_times_blocks(market: Driver) -> None:
    before = {name: balance(market, name) for name in ("tenant", "prov_a", "prov_b")}
    _, lease = open_lease(market)
    start = market.height
    assert balance(market, "prov_b") == before["prov_b"] - FEE  # its bid deposit came back on acceptance
    market.advance(4)
    market.ok("tenant", MsgCloseLease(lease, 0))
    blocks = market.height - start
    paid = blocks * PRICE_A
    assert balance(market, "prov_a") == before["prov_a"] - FEE + paid
    assert balance(market, "tenant") == before["tenant"] - 3 * FEE - paid
    assert market.app.check_invariants() == []


def test_a_lease_funded_for_n_blocks_closes_in_block_n(market: Driver) -> None:
    n = 7
    before = {name: balance(market, name) for name in ("tenant", "prov_a")}
    _, lease = open_lease(market, deposit=n * PRICE_A)
    start = market.height
    market.advance(n - 1)
    assert escrow.get_account(CommittedView(market.app.store), lease)["open"]
    market.advance(1)
    account = escrow.get_account(CommittedView(market.app.store), lease)
    assert not account["open"] and account["reason"] == escrow.REASON_INSUFFICIENT_FUNDS
    assert account["closed_at"] == start + n == market.height
    gained = balance(market, "prov_a") - (before["prov_a"] - FEE)
    spent = (before["tenant"] - 2 * FEE) - balance(market, "tenant")  # two fees: deployment, acceptance
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


def test_orders_without_a_lease_expire_and_refund(market: Driver) -> None:
    before = balance(market, "tenant")
    market.ok("tenant", deployment())
    market.ok("prov_a", MsgBid(1, PRICE_A))
    market.advance(50)
    assert get_order(CommittedView(market.app.store), 1)["state"] == "expired"
    assert balance(market, "tenant") == before - FEE
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
