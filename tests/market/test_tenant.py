"""`market match`: which registered providers can serve a deployment, and the reason for each that cannot,
read from the chain's own provider records."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import codec
from gridmint.chain.market import MsgRegisterProvider
from gridmint.market.deployment import parse_deployment
from gridmint.market.tenant import explain_match
from tests.chain.test_market import MARKET
from tests.helpers import MINT, Driver, genesis, make_app
from tests.market.test_deployment import GOOD


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
