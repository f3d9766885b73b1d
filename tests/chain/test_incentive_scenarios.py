"""Scenario tests of the incentive layer on the real app, driven block by block; each asserts numbers."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from gridmint.chain import bank, neurons
from gridmint.chain.state import CommittedView
from gridmint.chain.subnets import MsgRegister, MsgSetHyperparam, compute_burn, get_burn, get_hyperparams
from gridmint.chain.weights import MsgCommitWeights, MsgRevealWeights, commit_hash
from gridmint.chain.yuma import ONE
from tests.chain.incentive_network import TEMPO, build, hot
from tests.support.chain import FEE, MINT, balance, key


def test_a_honest_validators_with_different_views_rank_miners_by_true_quality(tmp_path: Path) -> None:
    quality = {"m1": 0.9, "m2": 0.7, "m3": 0.5, "m4": 0.2}
    net = build(tmp_path, {"v1": 500 * MINT, "v2": 300 * MINT, "v3": 200 * MINT}, tuple(quality))
    rng = random.Random(4)
    for validator in ("v1", "v2", "v3"):
        view = {m: max(1, int(65_535 * (q + rng.uniform(-0.08, 0.08)))) for m, q in quality.items()}
        net.set_weights(validator, view)
    for _ in range(3):
        net.until_epoch()
    incentive = {m: net.vector("incentive")[net.uid(m)] for m in quality}
    assert incentive["m1"] > incentive["m2"] > incentive["m3"] > incentive["m4"] > 0
    assert incentive["m1"] > 3 * incentive["m4"]
    assert abs(sum(incentive.values()) - ONE) <= 4


def test_b_a_minority_below_kappa_cannot_lift_a_bad_miner(tmp_path: Path) -> None:
    net = build(tmp_path, {"honest": 700 * MINT, "colluder": 300 * MINT}, ("good", "fair", "bad"))
    net.set_weights("honest", {"good": 65_535, "fair": 30_000})
    net.set_weights("colluder", {"bad": 65_535})
    for _ in range(3):
        net.until_epoch()
    incentive = net.vector("incentive")
    assert incentive[net.uid("bad")] == 0
    assert incentive[net.uid("good")] > incentive[net.uid("fair")] > 0
    assert net.vector("trust")[net.uid("colluder")] == 0  # none of its weight survived clipping
    paid = net.vector("emission")
    assert paid[net.uid("bad")] == 0


def test_c_a_weight_copier_earns_less_than_an_honest_validator_of_equal_stake(tmp_path: Path) -> None:
    """Commit-reveal: a copier only sees weights once revealed, one epoch late, while the best miner moves."""
    miners = ("m1", "m2", "m3")
    stakes = {"honest1": 400 * MINT, "honest2": 400 * MINT, "copier": 400 * MINT}
    net = build(tmp_path, stakes, miners, commit_reveal=1, reveal_period=1)
    salt = bytes(32)
    committed: dict[str, tuple[list[int], list[int]]] = {}
    revealed: dict[str, tuple[list[int], list[int]]] = {}
    earned = dict.fromkeys(stakes, 0)
    for round_index in range(8):
        best = miners[round_index % 3]  # quality moves every epoch
        truth = [65_535 if m == best else 10_000 for m in miners]
        uids = [net.uid(m) for m in miners]
        for name in stakes:  # reveal what was committed last epoch
            if name in committed:
                c_uids, c_weights = committed[name]
                net.send(hot(name), MsgRevealWeights(net.netuid, c_uids, c_weights, salt))
                revealed[name] = committed[name]
        net.commit()
        plans = {"honest1": (uids, truth), "honest2": (uids, truth),
                 "copier": revealed.get("honest1", (uids, truth))}  # the freshest weights it can see
        for name, (p_uids, p_weights) in plans.items():
            digest = commit_hash(net.netuid, key(hot(name)).address, p_uids, p_weights, salt)
            net.send(hot(name), MsgCommitWeights(net.netuid, digest))
            committed[name] = (p_uids, p_weights)
        net.commit()
        net.until_epoch()
        if round_index >= 3:  # after bonds have formed
            paid = net.vector("emission")
            for name in stakes:
                earned[name] += paid[net.uid(name)]
    assert earned["copier"] < earned["honest1"]
    assert earned["copier"] < earned["honest2"]
    assert abs(earned["honest1"] - earned["honest2"]) <= earned["honest1"] // 100


def test_d_the_epoch_pays_18_41_41_to_the_grain_and_supply_grows_by_the_rewards(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 600 * MINT, "v2": 400 * MINT}, ("m1", "m2"))
    net.set_weights("v1", {"m1": 60_000, "m2": 20_000})
    net.set_weights("v2", {"m1": 50_000, "m2": 30_000})
    net.until_epoch()

    def book() -> dict[str, int]:
        view = CommittedView(net.app.store)
        return {"supply": bank.get_supply(view), "owner": bank.get_balance(view, key("owner").address),
                "miners": sum(bank.get_balance(view, key(m).address) for m in ("m1", "m2")),
                "validators": sum(bank.get_balance(view, key(v).address) for v in ("v1", "v2"))
                + bank.get_held(view, "staking"),
                "pending": neurons.get_pending(view, net.netuid)}

    before = book()
    blocks_before = net.height
    net.until_epoch()
    after = book()
    blocks = net.height - blocks_before
    assert after["supply"] - before["supply"] == blocks * MINT  # no fee was paid in these blocks
    paid_out = before["pending"] + blocks * MINT - after["pending"]
    assert after["pending"] == 0
    assert after["owner"] - before["owner"] == paid_out * 18 // 100
    assert after["miners"] - before["miners"] == paid_out * 41 // 100
    assert after["validators"] - before["validators"] == paid_out - paid_out * 18 // 100 - paid_out * 41 // 100
    assert net.app.check_invariants() == []


def test_e_a_full_subnet_prunes_the_lowest_emission_non_immune_uid(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 500 * MINT}, ("m1", "m2"), extra_accounts=("late", "later"), max_uids=4,
                immunity_period=3 * TEMPO)
    net.set_weights("v1", {"m1": 65_535, "m2": 1_000})
    for _ in range(4):
        net.until_epoch()
    emission = net.vector("emission")
    assert emission[net.uid("m1")] > emission[net.uid("m2")] > 0
    m2_uid = net.uid("m2")
    net.ok("late", MsgRegister(net.netuid, key(hot("late")).address, 0))  # takes the 4th and last UID
    assert net.subnet()["n"] == 4
    net.ok("later", MsgRegister(net.netuid, key(hot("later")).address, 0))  # full: someone is pruned
    assert net.uid("later") == m2_uid  # m2 had the lowest emission among non-immune UIDs
    view = CommittedView(net.app.store)
    assert neurons.uid_of(view, net.netuid, key(hot("m2")).address) is None
    assert net.uid("late") == 3  # immune (just registered) with zero emission, and it survived
    assert net.app.check_invariants() == []


def test_f_registration_price_rises_per_registration_and_halves_over_its_half_life(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 500 * MINT}, (), extra_accounts=("a", "b", "c"), burn_half_life=40)
    prices = []
    hyper = get_hyperparams(net.subnet())
    for name in ("a", "b", "c"):
        price = get_burn(net.subnet(), net.height + 1)
        before = balance(net.app, name)
        net.ok(name, MsgRegister(net.netuid, key(hot(name)).address, 0))
        spent = before - balance(net.app, name)
        assert spent == price + FEE  # the burn plus the fee (the driver pays FEE, more than required)
        prices.append(price)
    for earlier, later in itertools.pairwise(prices):  # ×1.26 per registration, one block of decay in between
        assert later == compute_burn(earlier * 1_260 // 1_000, 1, hyper)
    assert prices[2] > prices[1] > prices[0]
    base = net.subnet()["burn"]
    at = net.subnet()["burn_block"]
    assert get_burn(net.subnet(), at) == base
    assert get_burn(net.subnet(), at + 40) == base // 2
    assert get_burn(net.subnet(), at + 80) == base // 4
    assert base // 2 < get_burn(net.subnet(), at + 20) < base


def test_g_a_validator_that_stops_setting_weights_loses_dividends_after_the_cutoff(tmp_path: Path) -> None:
    net = build(tmp_path, {"steady": 500 * MINT, "quitter": 500 * MINT}, ("m1", "m2"), activity_cutoff=25)
    for _ in range(2):
        net.set_weights("steady", {"m1": 65_535, "m2": 30_000})
        net.set_weights("quitter", {"m1": 65_535, "m2": 30_000})
        net.until_epoch()
    assert net.vector("dividends")[net.uid("quitter")] > 0
    for _ in range(4):  # only steady keeps setting weights
        net.set_weights("steady", {"m1": 65_535, "m2": 30_000})
        net.until_epoch()
    assert net.vector("active")[net.uid("quitter")] == 0
    assert net.vector("dividends")[net.uid("quitter")] == 0
    assert net.vector("emission")[net.uid("quitter")] == 0
    assert net.vector("dividends")[net.uid("steady")] >= ONE - 4


def test_h_with_commit_reveal_off_weights_set_after_a_tempo_change_count_at_the_next_epoch(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 500 * MINT}, ("m1", "m2"))
    net.ok("owner", MsgSetHyperparam(net.netuid, "tempo", 20))
    assert net.subnet()["params"]["tempo"] == 20
    net.set_weights("v1", {"m1": 65_535, "m2": 0})  # set directly: no commit, no reveal
    net.until_epoch()
    incentive = net.vector("incentive")
    assert incentive[net.uid("m1")] >= ONE - 4 and incentive[net.uid("m2")] == 0
    started = net.app.store.height
    net.until_epoch()
    assert net.app.store.height - started == 20  # the next epoch comes a tempo of 20 blocks later
