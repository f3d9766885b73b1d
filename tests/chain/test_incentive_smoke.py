from __future__ import annotations

from pathlib import Path

from tests.chain.incentive_network import build
from tests.support.chain import MINT


def test_a_subnet_runs_epochs_and_pays(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 600 * MINT, "v2": 400 * MINT}, ("m1", "m2"))
    assert net.vector("permit")[net.uid("v1")] == 1
    net.set_weights("v1", {"m1": 60_000, "m2": 20_000})
    net.set_weights("v2", {"m1": 50_000, "m2": 30_000})
    net.until_epoch()
    net.until_epoch()
    incentive = net.vector("incentive")
    assert incentive[net.uid("m1")] > incentive[net.uid("m2")] > 0
    assert sum(net.vector("dividends")) > 0
    assert net.app.check_invariants() == []
