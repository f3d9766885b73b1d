"""Unit-level checks of subnets, staking and emission that the scenarios do not pin down: lock cost,
delegation after the take, dissolving, endpoint rate limits, block reward schedule, queries at a height."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import bank, codec, neurons, staking, subnets
from gridmint.chain.emission import Params as EmissionParams
from gridmint.chain.emission import compute_block_reward
from gridmint.chain.errors import lookup
from gridmint.chain.state import CommittedView
from gridmint.chain.subnets import (
    MsgAnnounceEndpoint,
    MsgCreateSubnet,
    MsgDissolveSubnet,
    MsgRegister,
    Params,
    compute_lock_cost,
)
from gridmint.chain.weights import MsgSetWeights
from gridmint.chain.yuma import ONE
from tests.chain.incentive_network import build, hot
from tests.support.chain import FEE, MINT, key


def test_lock_cost_doubles_and_decays_linearly() -> None:
    params = Params(min_lock=10, lock_decay_period=100)
    assert compute_lock_cost(params, 0, 0, 5) == 10
    assert compute_lock_cost(params, 40, 100, 100) == 80
    assert compute_lock_cost(params, 40, 100, 150) == 60
    assert compute_lock_cost(params, 40, 100, 200) == 40  # the last lock after one period
    assert compute_lock_cost(params, 40, 100, 250) == 20  # and on down: no ratchet at the last lock
    assert compute_lock_cost(params, 40, 100, 300) == 10  # the minimum after two periods
    assert compute_lock_cost(params, 40, 100, 10_000) == 10
    assert compute_lock_cost(params, 4, 100, 150) == 10  # never below the minimum


def test_second_subnet_costs_double_and_dissolve_returns_everything(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 500 * MINT}, ("m1",), extra_accounts=("second",))
    first_lock, first_block = net.subnet()["lock"], net.subnet()["created_at"]
    net.ok("second", MsgCreateSubnet("embedding", "vectors"))
    view = CommittedView(net.app.store)
    second = neurons.require_subnet(view, 2)
    assert second["lock"] == compute_lock_cost(Params(min_lock=10 * MINT, lock_decay_period=100),
                                               first_lock, first_block, second["created_at"])
    assert first_lock < second["lock"] < 2 * first_lock
    owner_before = bank.get_balance(view, key("owner").address)
    staked = staking.get_stake(view, 1, key(hot("v1")).address, key("v1").address)
    v1_before = bank.get_balance(view, key("v1").address)
    net.ok("owner", MsgDissolveSubnet(1))
    net.block()  # the stakes come back from the block after the dissolve's (which reserves their work)
    view = CommittedView(net.app.store)
    assert neurons.get_subnet(view, 1) is None
    assert bank.get_balance(view, key("owner").address) == owner_before + first_lock - FEE
    assert bank.get_balance(view, key("v1").address) == v1_before + staked
    assert list(view.scan(b"staking/pool/")) == [] and list(view.scan(b"staking/position/")) == []
    assert list(view.scan(b"subnets/vec/\x00\x01")) == []
    assert net.app.check_invariants() == []


def test_delegators_are_paid_after_the_take(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), extra_accounts=("delegator",))
    v1_hot = key(hot("v1")).address
    net.ok("delegator", staking.MsgAddStake(1, v1_hot, 700 * MINT))
    net.set_weights("v1", {"m1": 65_535})
    net.until_epoch()
    view = CommittedView(net.app.store)
    own = staking.get_stake(view, 1, v1_hot, key("v1").address)
    delegated = staking.get_stake(view, 1, v1_hot, key("delegator").address)
    v1_balance = bank.get_balance(view, key("v1").address)
    net.until_epoch()
    view = CommittedView(net.app.store)
    dividend = net.vector("emission")[net.uid("v1")]
    take = dividend * staking.DEFAULT_TAKE // 65_535
    assert bank.get_balance(view, key("v1").address) - v1_balance == take
    gained_own = staking.get_stake(view, 1, v1_hot, key("v1").address) - own
    gained_delegated = staking.get_stake(view, 1, v1_hot, key("delegator").address) - delegated
    assert gained_own + gained_delegated == dividend - take
    assert abs(gained_delegated * own - gained_own * delegated) <= own + delegated  # pro rata, to the grain
    assert net.app.check_invariants() == []


def test_endpoint_rate_limit(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",))
    net.ok(hot("m1"), MsgAnnounceEndpoint(1, "https://m1.example/v1", ["smollm2"], 5, 1))
    net.send(hot("m1"), MsgAnnounceEndpoint(1, "https://m1.example/v2", ["smollm2"], 5, 1))
    (result,) = net.commit()[hot("m1")]
    assert (result.codespace, result.code) == ("subnets", 10)
    net.advance(50)
    net.ok(hot("m1"), MsgAnnounceEndpoint(1, "https://m1.example/v2", ["smollm2"], 5, 1))


def test_prices_are_bounded_and_a_raise_waits_for_its_notice(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), serving_rate_limit=0)
    m1, url = hot("m1"), "https://m1.example/v1"
    bound, notice = subnets.Params().max_price_per_1k, subnets.Params().price_notice
    assert (bound, notice) == (10**12, 20)

    def endpoint() -> dict[str, int]:
        return dict(CommittedView(net.app.store).get_value(neurons.endpoint_key(1, net.uid("m1"))))

    def prices() -> tuple[int, int, int]:
        found = endpoint()
        return found["price_per_1k"], found["next_price_per_1k"], found["next_price_at"]

    net.ok(m1, MsgAnnounceEndpoint(1, url, ["smollm2"], 5_000, 1))
    assert prices() == (5_000, 0, 0)  # a first announcement holds at once
    before = endpoint()
    for price in (bound + 1, 10**18, 2**64 - 1):
        net.send(m1, MsgAnnounceEndpoint(1, "https://m1.example/v2", ["other"], price, 1))
        (result,) = net.commit()[m1]
        assert lookup(result.codespace, result.code).name == "price_above_limit", result.log  # type: ignore[union-attr]
        assert str(bound) in result.log and endpoint() == before
    # A raise (to the bound itself) waits price_notice blocks; the price in force stays until then.
    net.ok(m1, MsgAnnounceEndpoint(1, url, ["smollm2"], bound, 1))
    announced = net.height
    assert prices() == (5_000, bound, announced + notice)
    assert subnets.effective_price(endpoint(), announced + notice - 1) == 5_000
    assert subnets.effective_price(endpoint(), announced + notice) == bound
    net.ok(m1, MsgAnnounceEndpoint(1, url, ["smollm2"], bound, 1))  # the pending price again: its date holds
    assert prices() == (5_000, bound, announced + notice)
    # A cut holds at once and drops the pending raise.
    net.ok(m1, MsgAnnounceEndpoint(1, url, ["smollm2"], 4_000, 1))
    assert prices() == (4_000, 0, 0) and subnets.effective_price(endpoint(), net.height) == 4_000
    # A raise whose notice has passed is the price in force: a later raise starts from it.
    net.ok(m1, MsgAnnounceEndpoint(1, url, ["smollm2"], 4_500, 1))
    net.advance(notice)
    assert subnets.effective_price(endpoint(), net.height + 1) == 4_500
    net.ok(m1, MsgAnnounceEndpoint(1, url, ["smollm2"], 9_000, 1))
    assert prices() == (4_500, 9_000, net.height + notice)


def test_block_reward_halves_and_stops_at_the_cap() -> None:
    params = EmissionParams(initial_reward=1_000, halving_interval=10, cap=25_000)
    assert compute_block_reward(params, 9, 0) == 1_000
    assert compute_block_reward(params, 10, 0) == 500
    assert compute_block_reward(params, 25, 0) == 250
    assert compute_block_reward(params, 5, 24_900) == 100  # the last block lands on the cap
    assert compute_block_reward(params, 5, 25_000) == 0


def test_metagraph_and_queries_at_a_height(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1", "m2"))
    net.set_weights("v1", {"m1": 65_535, "m2": 10_000})
    net.until_epoch()
    net.until_epoch()
    then = net.height
    first = codec.decode(net.app.query("/subnets/1/metagraph", height=then).value)
    net.set_weights("v1", {"m2": 65_535})
    net.until_epoch()
    net.until_epoch()
    old = codec.decode(net.app.query("/subnets/1/metagraph", height=then).value)
    new = codec.decode(net.app.query("/subnets/1/metagraph").value)
    assert old == first and old["block"] == then
    incentive = lambda answer: [int.from_bytes(answer["incentive"][i * 8:(i + 1) * 8], "little") for i in range(3)]  # noqa: E731
    assert incentive(old)[net.uid("m1")] > incentive(old)[net.uid("m2")]
    assert incentive(new)[net.uid("m2")] == ONE
    info = codec.decode(net.app.query("/subnets/1").value)
    assert info["n"] == 3 and info["registration_price"] > 0 and info["params"]["tempo"] == 10
    assert codec.decode(net.app.query("/subnets/list").value)[0]["netuid"] == 1
    from gridmint.chain.crypto import format_address

    stakes = codec.decode(net.app.query(f"/staking/stakes/{format_address(key('v1').address)}").value)
    assert stakes[0]["netuid"] == 1 and stakes[0]["amount"] >= 300 * MINT
    emission = codec.decode(net.app.query("/emission/info").value)
    assert emission["next_block_reward"] == MINT and emission["minted"] > 0
    full = codec.decode(net.app.query("/subnets/1/metagraph", b"weights,bonds").value)
    assert str(net.uid("v1")) in full["weights"] and str(net.uid("v1")) in full["bonds"]
    assert "weights" not in new and "bonds" not in new
    assert net.app.query("/subnets/7").codespace == "subnets"
    assert net.app.query("/subnets/1/nothing").codespace == "query"


def test_weights_to_a_replaced_uid_are_void(tmp_path: Path) -> None:
    """A validator's weights aimed at a UID's previous occupant do not count for the new one."""
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1", "m2"), extra_accounts=("newbie",), max_uids=3)
    net.ok(hot("v1"), MsgSetWeights(1, [net.uid("m1"), net.uid("m2")], [1_000, 65_535]))
    net.until_epoch()
    m1_uid = net.uid("m1")
    assert 0 < net.vector("incentive")[m1_uid] < net.vector("incentive")[net.uid("m2")]
    net.ok("newbie", MsgRegister(1, key(hot("newbie")).address, 0))
    assert net.uid("newbie") == m1_uid  # m1 had the lowest emission and no immunity left
    net.until_epoch()
    assert net.vector("incentive")[m1_uid] == 0  # v1's weight on that UID was for m1, not for newbie
    assert net.vector("incentive")[net.uid("m2")] >= ONE - 2
