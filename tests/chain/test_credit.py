"""The credit module on the real app: settlement pays each miner's coldkey its amount and the gateway its fee out of
the consumer's line, to the grain; replays, overdrafts, unknown miners and strangers change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain import bank, credit
from gridmint.chain.credit import (
    MsgOpenCredit,
    MsgReclaimCredit,
    MsgRegisterGateway,
    MsgSettle,
    MsgTopUpCredit,
)
from gridmint.chain.errors import lookup
from gridmint.chain.state import CommittedView
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister
from gridmint.chain.tx import Msg
from tests.helpers import FEE, MINT, Driver, genesis, key, make_app

CREDIT = {"params": {"min_bond": MINT, "settle_grace": 5, "max_duration": 1_000}}
FEE_BPS = 250  # 2.5%


@pytest.fixture
def net(tmp_path: Path) -> Driver:
    names = ("owner", "gateway", "consumer", "miner_a", "miner_b", "stranger")
    driver = Driver(make_app(tmp_path, genesis(accounts=names, balance=1_000 * MINT, credit=CREDIT,
                                               subnets={"params": {"min_lock": MINT}})))
    driver.ok("owner", MsgCreateSubnet("text-generation", "chat"))
    for name in ("miner_a", "miner_b"):
        driver.ok(name, MsgRegister(1, key(f"{name}_hot").address, 0))
    driver.ok("gateway", MsgRegisterGateway("https://gateway.example", FEE_BPS, 2 * MINT))
    driver.ok("consumer", MsgOpenCredit(key("gateway").address, 10 * MINT, 100))
    return driver


def balance(net: Driver, name: str) -> int:
    return bank.get_balance(CommittedView(net.app.store), key(name).address)


def line(net: Driver) -> dict[str, int]:
    return credit.get_line(CommittedView(net.app.store), key("consumer").address, key("gateway").address)


def entry(miner: str, grains: int, requests: int = 3, consumer: str = "consumer") -> list[object]:
    return [key(consumer).address, key(f"{miner}_hot").address, grains, requests]


def test_settlement_pays_miners_and_the_gateway_to_the_grain(net: Driver) -> None:
    before = {name: balance(net, name) for name in ("miner_a", "miner_b", "gateway", "consumer")}
    net.ok("gateway", MsgSettle(1, [entry("miner_a", 1_000_003), entry("miner_b", 40_000), entry("miner_a", 7)]))
    fee = (1_000_003 * FEE_BPS // 10_000) + (40_000 * FEE_BPS // 10_000) + (7 * FEE_BPS // 10_000)
    assert balance(net, "miner_a") - before["miner_a"] == 1_000_010
    assert balance(net, "miner_b") - before["miner_b"] == 40_000
    assert balance(net, "gateway") - before["gateway"] == fee - FEE
    assert balance(net, "consumer") == before["consumer"]  # paid out of the held line, not the balance
    assert line(net)["balance"] == 10 * MINT - 1_040_010 - fee
    assert line(net)["spent"] == 1_040_010 + fee
    assert net.app.check_invariants() == []


def module_state(net: Driver) -> list[tuple[bytes, bytes]]:
    view = CommittedView(net.app.store)
    return [pair for prefix in (b"credit/", b"bank/held/credit") for pair in view.scan(prefix)]


def refuse(net: Driver, name: str, msg: Msg, expected: str) -> None:
    before = module_state(net), {n: balance(net, n) for n in ("consumer", "miner_a", "gateway") if n != name}
    net.send(name, msg)
    (result,) = net.commit()[name]
    kind = lookup(result.codespace, result.code)
    assert kind is not None and kind.name == expected, result.log
    after = module_state(net), {n: balance(net, n) for n in ("consumer", "miner_a", "gateway") if n != name}
    assert after == before  # only the sender's fee moved


def test_bad_batches_change_nothing(net: Driver) -> None:
    net.ok("gateway", MsgSettle(5, [entry("miner_a", 100)]))
    refuse(net, "gateway", MsgSettle(5, [entry("miner_a", 100)]), "batch_replayed")
    refuse(net, "gateway", MsgSettle(4, [entry("miner_a", 100)]), "batch_replayed")
    refuse(net, "gateway", MsgSettle(6, [entry("miner_a", 100), entry("miner_b", 10 * MINT)]), "beyond_credit")
    refuse(net, "gateway", MsgSettle(6, [entry("miner_a", 100), [key("consumer").address, key("stranger").address,
                                                                   100, 1]]), "unknown_miner")
    refuse(net, "gateway", MsgSettle(6, [entry("miner_a", 100, requests=0)]), "empty_entry")
    refuse(net, "gateway", MsgSettle(6, [entry("miner_a", 100, consumer="stranger")]), "no_line")
    refuse(net, "stranger", MsgSettle(6, [entry("miner_a", 100)]), "not_gateway")
    refuse(net, "consumer", MsgSettle(6, [entry("miner_a", 100)]), "not_gateway")
    assert net.app.check_invariants() == []


def test_lines_open_once_top_up_and_are_reclaimed_after_expiry_and_grace(net: Driver) -> None:
    gateway = key("gateway").address
    refuse(net, "consumer", MsgOpenCredit(gateway, MINT, 100), "line_exists")
    refuse(net, "stranger", MsgOpenCredit(key("stranger").address, MINT, 100), "not_gateway")
    refuse(net, "stranger", MsgOpenCredit(gateway, MINT, 5_000), "bad_expiry")
    refuse(net, "stranger", MsgTopUpCredit(gateway, MINT, 0), "no_line")
    expires = line(net)["expires"]
    net.ok("consumer", MsgTopUpCredit(gateway, 5 * MINT, 10))
    assert line(net)["balance"] == 15 * MINT and line(net)["expires"] == expires + 10
    refuse(net, "consumer", MsgReclaimCredit(gateway), "not_expired")
    net.ok("gateway", MsgSettle(1, [entry("miner_a", MINT)]))
    net.advance(line(net)["expires"] + CREDIT["params"]["settle_grace"] - CommittedView(net.app.store).height)
    before = balance(net, "consumer")
    left = line(net)["balance"]
    net.ok("consumer", MsgReclaimCredit(gateway))
    assert balance(net, "consumer") == before + left - FEE
    refuse(net, "consumer", MsgReclaimCredit(gateway), "no_line")
    assert net.app.check_invariants() == []


def test_gateway_registration_is_bounded(net: Driver) -> None:
    refuse(net, "stranger", MsgRegisterGateway("https://x.example", 10_001, 2 * MINT), "fee_too_high")
    refuse(net, "stranger", MsgRegisterGateway("https://x.example", 10, MINT // 2), "bond_too_low")
    refuse(net, "stranger", MsgRegisterGateway("ftp://x.example", 10, 2 * MINT), "invalid_field")
    before = balance(net, "gateway")
    net.ok("gateway", MsgRegisterGateway("https://gateway.example/v2", 100, MINT))  # a lower bond comes back
    assert balance(net, "gateway") == before + MINT - FEE
    gateways = credit.query_gateways(CommittedView(net.app.store), [], b"")
    assert [(g["url"], g["fee_bps"], g["last_batch"]) for g in gateways] == [("https://gateway.example/v2", 100, 0)]
