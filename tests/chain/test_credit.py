"""The credit module on the real app. Settlement pays each miner's coldkey the difference its signed cumulative
receipt adds and the gateway its fee at the line's terms, to the grain; a miner claims acknowledged receipts from
the line and then the gateway's bond; a consumer closes early and reclaims exactly what is left. Every refusal
(self-dealing, forged, replayed or older receipts, prices above the line's, beyond the cap, a raised fee) changes
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import bank, codec, credit, subnets
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import lookup
from gridmint.chain.receipts import Receipt, acknowledge_receipt, sign_receipt
from gridmint.chain.state import CommittedView
from gridmint.chain.tx import Msg
from tests.support.chain import CHAIN_ID, FEE, MINT, Driver, balance, genesis, key, make_app

CREDIT = {"params": {"min_bond": MINT, "settle_grace": 5, "max_duration": 1_000, "close_notice": 10}}
FEE_BPS = 250  # 2.5%
PRICE = 1_000_000  # the line's max grains per 1k tokens
BOND = 2 * MINT
NAMES = ("owner", "gateway", "consumer", "consumer_b", "miner_a", "miner_b", "stranger")


def terms(amount: int = 10 * MINT, duration: int = 100, max_price: int = PRICE, max_fee_bps: int = FEE_BPS,
          cap: int = 0, cap_period: int = 0, gateway: str = "gateway") -> credit.MsgOpenCredit:
    return credit.MsgOpenCredit(key(gateway).address, amount, duration, max_price, max_fee_bps, cap, cap_period)


@pytest.fixture
def net(tmp_path: Path) -> Driver:
    driver = Driver(make_app(tmp_path, genesis(accounts=NAMES, balance=1_000 * MINT, credit=CREDIT,
                                               subnets={"params": {"min_lock": MINT}})))
    driver.ok("owner", subnets.MsgCreateSubnet("text-generation", "chat"))
    for name in ("miner_a", "miner_b"):
        driver.ok(name, subnets.MsgRegister(1, key(f"{name}_hot").address, 0))
    driver.ok("gateway", credit.MsgRegisterGateway("https://gateway.example", FEE_BPS, BOND))
    driver.ok("consumer", terms())
    return driver


def view(net: Driver) -> CommittedView:
    return CommittedView(net.app.store)


def line(net: Driver, consumer: str = "consumer") -> dict[str, Any]:
    return credit.get_line(view(net), key(consumer).address, key("gateway").address)


def bond(net: Driver) -> int:
    return int(credit.get_gateway(view(net), key("gateway").address)["bond"])


def receipt(net: Driver, miner: str, tokens: int, grains: int, requests: int, consumer: str = "consumer",
            hotkey: str | None = None) -> Receipt:
    return Receipt(CHAIN_ID, int(line(net, consumer)["id"]), key("gateway").address, key(consumer).address,
                   key(hotkey or f"{miner}_hot").address, tokens, grains, requests)


def entry(net: Driver, miner: str, tokens: int, grains: int, requests: int, consumer: str = "consumer",
          hotkey: str | None = None, signer: str | None = None) -> list[Any]:
    """A settlement entry: the receipt signed by the miner's hotkey (or by ``signer``, to forge one)."""
    hot = hotkey or f"{miner}_hot"
    signed = sign_receipt(key(signer or hot), receipt(net, miner, tokens, grains, requests, consumer, hot))
    return [key(consumer).address, key(hot).public_key, tokens, grains, requests, signed]


def claim_entry(net: Driver, miner: str, tokens: int, grains: int, requests: int,
                acknowledger: str = "gateway") -> list[Any]:
    acknowledged = acknowledge_receipt(key(acknowledger), receipt(net, miner, tokens, grains, requests))
    return [*entry(net, miner, tokens, grains, requests), acknowledged]


def claim(*entries: list[Any]) -> credit.MsgClaim:
    return credit.MsgClaim(key("gateway").address, key("gateway").public_key, list(entries))


def fee(grains: int) -> int:
    return grains * FEE_BPS // 10_000


def module_state(net: Driver) -> list[tuple[bytes, bytes]]:
    return [pair for prefix in (b"credit/", b"bank/held/credit") for pair in view(net).scan(prefix)]


def refuse(net: Driver, name: str, msg: Msg, expected: str) -> str:
    """Send ``msg``; it must be refused with ``expected`` and change nothing but the sender's fee."""
    others = [n for n in NAMES if n != name]
    before = module_state(net), {n: balance(net.app, n) for n in others}, balance(net.app, name)
    net.send(name, msg)
    (result,) = net.commit()[name]
    kind = lookup(result.codespace, result.code)
    assert kind is not None and kind.name == expected, result.log
    after = module_state(net), {n: balance(net.app, n) for n in others}, balance(net.app, name)
    assert after[:2] == before[:2] and after[2] == before[2] - FEE  # only the sender's fee moved
    assert net.app.check_invariants() == []
    return result.log  # type: ignore[no-any-return]


def paid(net: Driver, line_id: int) -> list[dict[str, Any]]:
    return codec.decode(net.app.query(f"/credit/paid/{line_id}").value)  # type: ignore[no-any-return]


# --- settlement --------------------------------------------------------------------------------------------


def test_settlement_pays_the_difference_of_cumulative_receipts_to_the_grain(net: Driver) -> None:
    before = {name: balance(net.app, name) for name in ("miner_a", "miner_b", "gateway", "consumer")}
    # Two receipts of miner_a in one batch: the second is cumulative over the first.
    net.ok("gateway", credit.MsgSettle(1, [entry(net, "miner_a", 1_001, 1_000_003, 3),
                                           entry(net, "miner_b", 50, 40_000, 1),
                                           entry(net, "miner_a", 1_009, 1_000_010, 4)]))
    fees = fee(1_000_003) + fee(40_000) + fee(7)
    assert balance(net.app, "miner_a") - before["miner_a"] == 1_000_010
    assert balance(net.app, "miner_b") - before["miner_b"] == 40_000
    assert balance(net.app, "gateway") - before["gateway"] == fees - FEE
    assert balance(net.app, "consumer") == before["consumer"]  # paid out of the held line, not the balance
    assert line(net)["balance"] == 10 * MINT - 1_040_010 - fees and line(net)["spent"] == 1_040_010 + fees
    # A later receipt pays only what it adds.
    net.ok("gateway", credit.MsgSettle(2, [entry(net, "miner_a", 3_000, 3_000_000, 9)]))
    assert balance(net.app, "miner_a") - before["miner_a"] == 3_000_000
    more = fees + fee(3_000_000 - 1_000_010)
    assert balance(net.app, "gateway") - before["gateway"] == more - 2 * FEE
    assert line(net)["balance"] == 10 * MINT - 3_040_000 - more
    line_id = int(line(net)["id"])
    records = sorted(paid(net, line_id), key=lambda r: r["miner"])
    expected = sorted([{"miner": format_address(key("miner_a_hot").address), "tokens": 3_000, "grains": 3_000_000,
                        "requests": 9},
                       {"miner": format_address(key("miner_b_hot").address), "tokens": 50, "grains": 40_000,
                        "requests": 1}], key=lambda r: r["miner"])
    assert records == expected
    assert net.app.check_invariants() == []


def test_a_gateway_cannot_settle_to_itself(net: Driver) -> None:
    # The gateway's own account key as a hotkey, and a hotkey it owns, both registered by the gateway.
    net.ok("gateway", subnets.MsgRegister(1, key("gateway").address, 0))
    net.ok("gateway", subnets.MsgRegister(1, key("gateway_hot").address, 0))
    own_key = entry(net, "gateway", 1_000, 1_000_000, 1, hotkey="gateway")
    owned = entry(net, "gateway", 1_000, 1_000_000, 1, hotkey="gateway_hot")
    assert "gateway" in refuse(net, "gateway", credit.MsgSettle(1, [own_key]), "self_dealing")
    refuse(net, "gateway", credit.MsgSettle(1, [entry(net, "miner_a", 10, 10, 1), owned]), "self_dealing")


def test_receipts_without_the_miners_signature_are_refused(net: Driver) -> None:
    good = entry(net, "miner_a", 1_000, 1_000_000, 2)
    unsigned = [*good[:5], bytes(64)]
    forged = entry(net, "miner_a", 1_000, 1_000_000, 2, signer="gateway")
    inflated = [*good[:3], 1_000_001, *good[4:]]  # the miner signed 1,000,000
    other_line = entry(net, "miner_a", 1_000, 1_000_000, 2, consumer="consumer")
    other_line[0] = key("consumer_b").address
    net.ok("consumer_b", terms())  # the consumer_b line exists, but the signature names the consumer's
    for bad in (unsigned, forged, inflated, other_line):
        log = refuse(net, "gateway", credit.MsgSettle(1, [entry(net, "miner_b", 5, 5, 1), bad]), "bad_receipt")
        assert log.startswith("entry 1:")
    net.ok("gateway", credit.MsgSettle(1, [good]))


def test_replayed_and_older_receipts_are_stale(net: Driver) -> None:
    newer, older = entry(net, "miner_a", 2_000, 2_000_000, 5), entry(net, "miner_a", 1_000, 1_000_000, 2)
    net.ok("gateway", credit.MsgSettle(1, [newer]))
    refuse(net, "gateway", credit.MsgSettle(2, [newer]), "receipt_stale")  # replayed under a new batch id
    refuse(net, "gateway", credit.MsgSettle(2, [older]), "receipt_stale")
    no_request = entry(net, "miner_a", 3_000, 2_500_000, 5)
    refuse(net, "gateway", credit.MsgSettle(2, [no_request]), "receipt_stale")
    fewer_tokens = entry(net, "miner_a", 1_999, 2_000_001, 6)
    refuse(net, "gateway", credit.MsgSettle(2, [fewer_tokens]), "receipt_stale")
    refuse(net, "gateway", credit.MsgSettle(1, [entry(net, "miner_a", 3_000, 3_000_000, 6)]), "batch_replayed")
    net.ok("gateway", credit.MsgSettle(2, [entry(net, "miner_a", 3_000, 3_000_000, 6)]))


def test_a_line_keeps_the_fee_it_opened_with(net: Driver) -> None:
    net.ok("gateway", credit.MsgRegisterGateway("https://gateway.example", 10_000, BOND))  # 100%, after the line opened
    before = balance(net.app, "gateway")
    net.ok("gateway", credit.MsgSettle(1, [entry(net, "miner_a", 1_000, 1_000_000, 1)]))
    assert balance(net.app, "gateway") == before + fee(1_000_000) - FEE  # 2.5%, the line's fee
    # A new line gets the new fee only if the consumer accepts it.
    log = refuse(net, "consumer_b", terms(max_fee_bps=FEE_BPS), "fee_above_limit")
    assert "10000 bps" in log
    net.ok("consumer_b", terms(max_fee_bps=10_000))
    assert line(net, "consumer_b")["fee_bps"] == 10_000 and line(net)["fee_bps"] == FEE_BPS
    assert line(net, "consumer_b")["id"] == line(net)["id"] + 1


def test_receipts_above_the_lines_price_are_refused(net: Driver) -> None:
    # 1,000 tokens over 3 requests at 1,000,000 per 1k: 1,000,000 grains, plus under a grain per request.
    limit = credit.max_grains(1_000, 3, PRICE)
    assert limit == 1_000_002
    refuse(net, "gateway", credit.MsgSettle(1, [entry(net, "miner_a", 1_000, limit + 1, 3)]), "above_max_price")
    net.ok("gateway", credit.MsgSettle(1, [entry(net, "miner_a", 1_000, limit, 3)]))


def test_a_cap_bounds_each_period_and_the_next_period_starts_fresh(net: Driver) -> None:
    cap = 1_025_000  # 1,000,000 to miners and their 2.5% fee
    net.ok("consumer_b", terms(cap=cap, cap_period=10))
    opened = int(line(net, "consumer_b")["opened"])
    net.ok("gateway", credit.MsgSettle(1, [entry(net, "miner_a", 600, 600_000, 1, consumer="consumer_b")]))
    log = refuse(net, "gateway",
                 credit.MsgSettle(2, [entry(net, "miner_a", 1_001, 1_000_001, 2, consumer="consumer_b")]), "beyond_cap")
    assert f"block {opened + 10}" in log
    exactly_the_cap = entry(net, "miner_a", 1_000, 1_000_000, 2, consumer="consumer_b")
    net.ok("gateway", credit.MsgSettle(2, [exactly_the_cap]))
    refuse(net, "gateway", credit.MsgSettle(3, [entry(net, "miner_a", 1_001, 1_000_001, 3, consumer="consumer_b")]),
           "beyond_cap")
    net.advance(opened + 10 - net.height - 1)  # the next block starts the second period
    net.ok("gateway", credit.MsgSettle(3, [entry(net, "miner_a", 1_001, 1_000_001, 3, consumer="consumer_b")]))
    assert line(net, "consumer_b")["period_start"] == opened + 10
    assert line(net, "consumer_b")["period_spent"] == 1 + fee(1)


def test_bad_batches_change_nothing(net: Driver) -> None:
    net.ok("gateway", credit.MsgSettle(5, [entry(net, "miner_a", 100, 100, 1)]))
    refuse(net, "gateway", credit.MsgSettle(4, [entry(net, "miner_a", 200, 200, 2)]), "batch_replayed")
    refuse(net, "gateway", credit.MsgSettle(6, [entry(net, "miner_a", 200, 200, 2),
                                         entry(net, "miner_b", 10_000_000, 10 * MINT, 9)]), "beyond_credit")
    refuse(net, "gateway", credit.MsgSettle(6, [entry(net, "miner_a", 200, 200, 2),
                                         entry(net, "stranger", 100, 100, 1, hotkey="stranger")]), "unknown_miner")
    refuse(net, "gateway", credit.MsgSettle(6, [entry(net, "miner_a", 200, 200, 0)]), "empty_entry")
    refuse(net, "gateway", credit.MsgSettle(6, [[key("stranger").address, *entry(net, "miner_a", 200, 200, 2)[1:]]]),
           "no_line")
    refuse(net, "stranger", credit.MsgSettle(6, [entry(net, "miner_a", 200, 200, 2)]), "not_gateway")
    refuse(net, "consumer", credit.MsgSettle(6, [entry(net, "miner_a", 200, 200, 2)]), "not_gateway")


# --- lines: terms, top-up, close, reclaim ------------------------------------------------------------------


def test_lines_open_on_valid_terms_once_and_top_up(net: Driver) -> None:
    gateway = key("gateway").address
    assert line(net)["id"] == 1 and line(net)["max_price_per_1k"] == PRICE and line(net)["closing_at"] == 0
    refuse(net, "consumer", terms(amount=MINT), "line_exists")
    refuse(net, "stranger", terms(gateway="stranger"), "not_gateway")
    refuse(net, "stranger", terms(duration=5_000), "bad_expiry")
    refuse(net, "stranger", terms(max_price=0), "bad_terms")
    refuse(net, "stranger", terms(cap=MINT), "bad_terms")
    refuse(net, "stranger", terms(cap_period=10), "bad_terms")
    refuse(net, "stranger", credit.MsgTopUpCredit(gateway, MINT, 0), "no_line")
    expires = line(net)["expires"]
    net.ok("consumer", credit.MsgTopUpCredit(gateway, 5 * MINT, 10))
    assert line(net)["balance"] == 15 * MINT and line(net)["expires"] == expires + 10
    refuse(net, "consumer", credit.MsgReclaimCredit(gateway), "not_expired")
    net.ok("gateway", credit.MsgSettle(1, [entry(net, "miner_a", 1_000, MINT // 1_000, 1)]))
    net.advance(line(net)["expires"] + CREDIT["params"]["settle_grace"] - net.height - 1)
    before, left = balance(net.app, "consumer"), line(net)["balance"]
    net.ok("consumer", credit.MsgReclaimCredit(gateway))
    assert balance(net.app, "consumer") == before + left - FEE
    refuse(net, "consumer", credit.MsgReclaimCredit(gateway), "no_line")


def test_an_early_close_returns_exactly_the_unsettled_remainder_after_the_notice(net: Driver) -> None:
    gateway = key("gateway").address
    net.ok("gateway", credit.MsgSettle(1, [entry(net, "miner_a", 1_000, 1_000_000, 2)]))
    net.ok("consumer", credit.MsgCloseCredit(gateway))
    closing_at = net.height + CREDIT["params"]["close_notice"]
    assert line(net)["closing_at"] == closing_at
    assert codec.decode(net.app.query(f"/credit/line/{format_address(key('consumer').address)}/"
                                      f"{format_address(gateway)}").value)["reclaimable_from"] == closing_at
    refuse(net, "consumer", credit.MsgCloseCredit(gateway), "line_closing")
    refuse(net, "consumer", credit.MsgTopUpCredit(gateway, MINT, 0), "line_closing")
    assert str(closing_at) in refuse(net, "consumer", credit.MsgReclaimCredit(gateway), "not_expired")
    # Settlement during the notice still works: that is what the notice is for.
    net.ok("gateway", credit.MsgSettle(2, [entry(net, "miner_a", 2_000, 2_000_000, 4)]))
    unsettled = 10 * MINT - 2_000_000 - fee(1_000_000) - fee(1_000_000)
    assert line(net)["balance"] == unsettled
    net.advance(closing_at - net.height - 2)
    refuse(net, "consumer", credit.MsgReclaimCredit(gateway), "not_expired")  # the block before the notice ends
    line_id, before = int(line(net)["id"]), balance(net.app, "consumer")
    net.ok("consumer", credit.MsgReclaimCredit(gateway))
    assert net.height == closing_at
    assert balance(net.app, "consumer") == before + unsettled - FEE
    assert paid(net, line_id) == [] and bank.get_held(view(net), "credit") == BOND
    # A new line starts from zero under a new id: the old receipts pay nothing on it.
    net.ok("consumer", terms())
    assert line(net)["id"] == line_id + 1
    refuse(net, "gateway", credit.MsgSettle(3, [[*entry(net, "miner_a", 2_000, 2_000_000, 4)[:5],
                                          sign_receipt(key("miner_a_hot"), Receipt(
                                              CHAIN_ID, line_id, gateway, key("consumer").address,
                                              key("miner_a_hot").address, 2_000, 2_000_000, 4))]]), "bad_receipt")


def test_gateway_registration_is_bounded(net: Driver) -> None:
    refuse(net, "stranger", credit.MsgRegisterGateway("https://x.example", 10_001, 2 * MINT), "fee_too_high")
    refuse(net, "stranger", credit.MsgRegisterGateway("https://x.example", 10, MINT // 2), "bond_too_low")
    refuse(net, "stranger", credit.MsgRegisterGateway("ftp://x.example", 10, 2 * MINT), "invalid_field")
    before = balance(net.app, "gateway")
    net.ok("gateway", credit.MsgRegisterGateway("https://gateway.example/v2", 100, MINT))  # a lower bond comes back
    assert balance(net.app, "gateway") == before + MINT - FEE
    gateways = credit.query_gateways(view(net), [], b"")
    assert [(g["url"], g["fee_bps"], g["last_batch"]) for g in gateways] == [("https://gateway.example/v2", 100, 0)]


# --- claims --------------------------------------------------------------------------------------------------


def test_a_miner_claims_acknowledged_receipts_from_the_line_then_the_bond(tmp_path: Path) -> None:
    net = Driver(make_app(tmp_path, genesis(accounts=NAMES, balance=1_000 * MINT, credit=CREDIT,
                                            subnets={"params": {"min_lock": MINT}})))
    net.ok("owner", subnets.MsgCreateSubnet("text-generation", "chat"))
    net.ok("miner_a", subnets.MsgRegister(1, key("miner_a_hot").address, 0))
    net.ok("gateway", credit.MsgRegisterGateway("https://gateway.example", FEE_BPS, BOND))
    net.ok("consumer", terms(amount=MINT, max_price=10 * MINT))
    before = {name: balance(net.app, name) for name in ("miner_a", "gateway", "consumer")}
    # Paid from the line, with the gateway's fee, like a settlement (anyone may send it: here the miner's coldkey).
    net.ok("miner_a", claim(claim_entry(net, "miner_a", 1_000, 400_000_000, 1)))
    assert balance(net.app, "miner_a") == before["miner_a"] + 400_000_000 - FEE
    assert balance(net.app, "gateway") == before["gateway"] + fee(400_000_000)
    assert line(net)["balance"] == MINT - 400_000_000 - fee(400_000_000) and bond(net) == BOND
    # The line has 590,000,000 left: it pays them to the miner (no fee), the bond pays the other 1,410,000,000.
    left = line(net)["balance"]
    net.ok("miner_a", claim(claim_entry(net, "miner_a", 3_000, 2_400_000_000, 2)))
    assert balance(net.app, "miner_a") == before["miner_a"] + 2_400_000_000 - 2 * FEE
    assert line(net)["balance"] == 0 and bond(net) == BOND - (2_000_000_000 - left)
    assert balance(net.app, "gateway") == before["gateway"] + fee(400_000_000)
    assert net.app.check_invariants() == []
    # The bond runs out: it pays what it has and no more; the record advances by what was paid.
    slashed_to = bond(net)
    net.ok("miner_a", claim(claim_entry(net, "miner_a", 9_000, 9_000_000_000, 3)))
    assert bond(net) == 0 and balance(net.app, "miner_a") == before["miner_a"] + 2_400_000_000 + slashed_to - 3 * FEE
    (record,) = paid(net, int(line(net)["id"]))
    assert (record["tokens"], record["grains"], record["requests"]) == (3_000, 2_400_000_000 + slashed_to, 2)
    assert bank.get_held(view(net), "credit") == 0 and net.app.check_invariants() == []
    # Nothing left anywhere: refused, nothing changes. Once the gateway bonds again, the same receipt pays the rest.
    again = claim(claim_entry(net, "miner_a", 9_000, 9_000_000_000, 3))
    refuse(net, "miner_a", again, "beyond_credit")
    net.ok("gateway", credit.MsgRegisterGateway("https://gateway.example", FEE_BPS, 10 * MINT))
    net.ok("miner_a", again)
    assert balance(net.app, "miner_a") == before["miner_a"] + 9_000_000_000 - 5 * FEE  # five claims, one refused
    (record,) = paid(net, int(line(net)["id"]))
    assert (record["tokens"], record["grains"], record["requests"]) == (9_000, 9_000_000_000, 3)
    assert bond(net) == 10 * MINT - (9_000_000_000 - 2_400_000_000 - slashed_to)
    assert net.app.check_invariants() == []


def test_a_claim_needs_the_gateways_acknowledgement(net: Driver) -> None:
    unacknowledged = [*entry(net, "miner_a", 1_000, 1_000_000, 1), bytes(64)]
    refuse(net, "miner_a", claim(unacknowledged), "bad_receipt")
    refuse(net, "miner_a", claim(claim_entry(net, "miner_a", 1_000, 1_000_000, 1, acknowledger="miner_a")),
           "bad_receipt")
    good = claim_entry(net, "miner_a", 1_000, 1_000_000, 1)
    refuse(net, "miner_a", credit.MsgClaim(key("gateway").address, key("miner_a").public_key, [good]), "bad_receipt")
    refuse(net, "miner_a", claim([*good[:5], bytes(64), good[6]]), "bad_receipt")  # the miner's signature missing
    refuse(net, "miner_a", credit.MsgClaim(key("stranger").address, key("stranger").public_key, [good]), "not_gateway")
    net.ok("miner_a", claim(good))
    refuse(net, "miner_a", claim(good), "receipt_stale")
