"""`market match`: which registered providers can serve a deployment, and the reason for each that cannot,
read from the chain's own provider records; what the tenant is told about its order's hold deposit; and the ids
of the order and lease its transactions created."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import codec
from gridmint.chain.crypto import format_address
from gridmint.chain.market import MsgBid, MsgCreateDeployment, MsgRegisterProvider
from gridmint.market.deployment import parse_deployment
from gridmint.market.tenant import accept_bid, create_order, describe_hold, explain_match
from tests.chain.test_market import MARKET
from tests.market.test_deployment import GOOD
from tests.support.chain import MINT, Driver, genesis, key, make_app
from tests.support.in_process_client import InProcessClient


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


def test_the_order_and_lease_ids_come_from_the_results_data(tmp_path: Path) -> None:
    """create_order and accept_bid read the order and lease they created from the transaction's result data: the
    client here answers with no events at all, so reading them from event strings would fail."""
    net = Driver(make_app(tmp_path, genesis(accounts=("tenant", "a100"), balance=100 * MINT, market=MARKET)))
    net.ok("a100", MsgRegisterProvider("https://a.example", "A100", 2, 80, 8_000, 32_000, 1, "eu", [], MINT))
    client = InProcessClient(net)
    deployment = parse_deployment(GOOD)
    first, height = create_order(client, key("tenant"), deployment)  # type: ignore[arg-type]
    second, _ = create_order(client, key("tenant"), deployment)  # type: ignore[arg-type]
    assert (first, second, height) == (1, 2, net.height - 1)
    assert codec.decode(net.app.query("/market/order/2").value)["tenant"] == format_address(key("tenant").address)
    net.ok("a100", MsgBid(second, deployment.max_price))
    lease = accept_bid(client, key("tenant"), second, format_address(key("a100").address))  # type: ignore[arg-type]
    assert lease == 1 and codec.decode(net.app.query("/market/lease/1").value)["order"] == second
