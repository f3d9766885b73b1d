"""emission's split of an epoch between owner, miners and validators: parameters in basis points, bounded in
genesis (each and together), exported, and followed to the grain at each epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain import bank, emission, neurons
from gridmint.chain.errors import ChainError
from gridmint.chain.state import CommittedView
from tests.chain.incentive_network import Network, build
from tests.support.chain import MINT, genesis, key


def split_net(tmp_path: Path, owner_bps: int, miner_bps: int) -> Network:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",),
                sections={"emission": {"params": {"owner_share_bps": owner_bps, "miner_share_bps": miner_bps}}})
    net.set_weights("v1", {"m1": 65_535})
    return net


def epoch_gains(net: Network) -> tuple[int, int, int, int]:
    """(owner's gain, grains paid to m1, grains paid to v1, what is left pending) over the next epoch."""
    view = CommittedView(net.app.store)
    owner_before = bank.get_balance(view, key("owner").address)
    net.until_epoch()
    view = CommittedView(net.app.store)
    paid = net.vector("emission")
    owner_gain = bank.get_balance(view, key("owner").address) - owner_before
    return owner_gain, paid[net.uid("m1")], paid[net.uid("v1")], neurons.get_pending(view, 1)


@pytest.mark.parametrize(("owner_bps", "miner_bps"), [(1_800, 4_100), (10_000, 0), (0, 10_000), (2_500, 2_500)])
def test_an_epoch_pays_owner_miners_and_validators_their_shares(tmp_path: Path, owner_bps: int,
                                                                   miner_bps: int) -> None:
    net = split_net(tmp_path, owner_bps, miner_bps)
    owner, miner, validator, left = epoch_gains(net)
    total = owner + miner + validator
    assert left == 0 and total > 0
    assert owner == total * owner_bps // 10_000
    assert miner == total * miner_bps // 10_000
    assert validator == total - owner - miner
    assert net.app.check_invariants() == []


def test_the_shares_are_bounded_each_and_together_and_exported(tmp_path: Path) -> None:
    for bad, words in (({"owner_share_bps": 10_001}, "emission.params.owner_share_bps"),
                       ({"miner_share_bps": -1}, "emission.params.miner_share_bps"),
                       ({"owner_share_bps": 6_000, "miner_share_bps": 4_001}, "together exceed 10000")):
        with pytest.raises(ChainError) as refused:
            genesis(emission={"params": bad})
        assert refused.value.kind.name == "invalid_genesis" and words in refused.value.message
    assert genesis().modules["emission"].params == emission.Params()  # 1,800 and 4,100: 18% and 41%
    net = split_net(tmp_path, 3_000, 7_000)  # together exactly all of it: validators get nothing
    exported = net.app.export_genesis("2026-01-01T00:00:00Z")["app_state"]["emission"]["params"]
    assert (exported["owner_share_bps"], exported["miner_share_bps"]) == (3_000, 7_000)
