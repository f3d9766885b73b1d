"""`market match`: which registered providers can serve a deployment, and the reason for each that cannot,
read from the chain's own provider records; and what the tenant is told about its order's hold deposit."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import codec
from gridmint.chain.market import MsgCreateDeployment, MsgRegisterProvider
from gridmint.market.deployment import parse_deployment
from gridmint.market.tenant import describe_hold, explain_match
from tests.chain.test_market import MARKET
from tests.market.test_deployment import GOOD
from tests.support.chain import MINT, Driver, genesis, make_app


def test_match_explains_every_provider(tmp_path: Path) -> None:
    net = Driver(make_app(tmp_path, genesis(accounts=("a100", "small", "cpu_only"), balance=100 * MINT,
                                            market=MARKET)))
    net.ok("a100", MsgRegisterProvider("https://a.example", "A100", 2, 80, 8_000, 32_000, 1, "eu", [], MINT))
    net.ok("small", MsgRegisterProvider("https://s.example", "A100", 1, 24, 8_000, 32_000, 1, "eu", [], MINT))
    net.ok("cpu_only", MsgRegisterProvider("https://c.example", "", 0, 0, 64_000, 256_000, 1, "us", [], MINT))
    providers = codec.decode(net.app.query("/market/providers").value)
    matches = {m.host_uri: m for m in explain_match(providers, parse_deployment(GOOD))}
    assert matches["https://a.example"].fits
    assert matches["https://s.example"].reason == "VRAM 24 GB < 40 GB needed"
    assert matches["https://c.example"].reason == "0 GPUs < 1 needed"
    nobody = parse_deployment(GOOD.replace("models: [A100, H100]", "models: [TPU]"))
    assert all((not m.fits and "not among TPU" in (m.reason or "")) or "GPUs" in (m.reason or "")
               for m in explain_match(providers, nobody))


def test_the_tenant_is_told_the_hold_deposit_it_put_up_and_that_a_lease_returns_it(tmp_path: Path) -> None:
    net = Driver(make_app(tmp_path, genesis(accounts=("tenant",), balance=100 * MINT, market=MARKET)))
    net.ok("tenant", MsgCreateDeployment(500, 256, 0, [], 0, MINT // 1_000, b"\x01" * 32, 5 * MINT))
    order = codec.decode(net.app.query("/market/order/1").value)
    # (1,024 + 8 × 500 + 256) resource units × 50 blocks of order_ttl × hold_fee 1, for MARKET's 5 bids
    assert (order["hold"], order["hold_per_bid"], order["hold_paid"]) == (5 * 264_000, 264_000, 0)
    assert describe_hold(order) == ("hold deposit 0.00132 MINT, back in full when a lease starts; if the order ends "
                                    "without one, each bidder is paid 0.000264 MINT of it for the capacity it kept "
                                    "free, and the rest comes back")
    assert describe_hold({**order, "hold": 0, "hold_per_bid": 0}) == "no hold deposit"
