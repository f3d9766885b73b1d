"""A small subnet on a real app, driven block by block, for the incentive-layer tests."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import neurons
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.state import CommittedView
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.weights import MsgSetWeights
from tests.support.chain import MINT, Driver, genesis, key, make_app

TEMPO = 10
SUBNETS_GENESIS = {"params": {"min_lock": 10 * MINT, "lock_decay_period": 100, "max_subnets": 8,
                              "default_tempo": TEMPO}}


def hot(name: str) -> str:
    return f"{name}/hot"


class Network(Driver):
    netuid = 1

    def vector(self, name: str) -> list[int]:
        view = CommittedView(self.app.store)
        size = neurons.require_subnet(view, self.netuid)["n"]
        return neurons.get_vector(view, self.netuid, name, size).tolist()

    def uid(self, name: str) -> int:
        uid = neurons.uid_of(CommittedView(self.app.store), self.netuid, key(hot(name)).address)
        assert uid is not None, name
        return uid

    def subnet(self) -> dict:  # type: ignore[type-arg]
        return neurons.require_subnet(CommittedView(self.app.store), self.netuid)  # type: ignore[return-value]

    def until_epoch(self) -> None:
        """Commit blocks until the next epoch has run."""
        epoch = self.subnet()["epoch"]
        while self.subnet()["epoch"] == epoch:
            self.block()

    def set_weights(self, validator: str, weights: dict[str, int]) -> None:
        uids = [self.uid(name) for name in weights]
        self.ok(hot(validator), MsgSetWeights(self.netuid, uids, list(weights.values())))


def build(tmp_path: Path, validators: dict[str, int], miners: tuple[str, ...], commit_reveal: int = 0,
          extra_accounts: tuple[str, ...] = (), sections: dict | None = None, **hyper: int) -> Network:  # type: ignore[type-arg]
    """Owner creates subnet 1; validators register and stake (grains given), miners register; one epoch runs
    so that permits exist. ``sections`` adds genesis sections (``staking={"params": ...}``)."""
    names = ("owner", *validators, *miners, *extra_accounts)
    accounts = (*names, *(hot(name) for name in (*validators, *miners)))
    net = Network(make_app(tmp_path, genesis(accounts=accounts, balance=100_000 * MINT, subnets=SUBNETS_GENESIS,
                                             **(sections or {}))))
    net.ok("owner", MsgCreateSubnet("text-generation", "test subnet"))
    settings = {"commit_reveal": commit_reveal, "weights_rate_limit": 0, "immunity_period": 0, **hyper}
    for param, value in settings.items():
        net.ok("owner", MsgSetHyperparam(net.netuid, param, value))
    for name in (*validators, *miners):
        net.ok(name, MsgRegister(net.netuid, key(hot(name)).address, 0))
    for name, stake in validators.items():
        net.ok(name, MsgAddStake(net.netuid, key(hot(name)).address, stake))
    net.until_epoch()
    return net
