"""Bad input to subnets, staking and weights: each refused with its own code, and nothing changes — checked at
the mempool's door (app hash unchanged) and inside a block (subnet, stake and weight state byte-identical)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gridmint.chain.staking import MsgAddStake, MsgRemoveStake, MsgSetTake
from gridmint.chain.state import CommittedView
from gridmint.chain.subnets import MsgAnnounceEndpoint, MsgRegister, MsgSetHyperparam
from gridmint.chain.tx import Msg
from gridmint.chain.weights import MsgCommitWeights, MsgRevealWeights, MsgSetWeights, commit_hash
from tests.chain.incentive_network import Network, build, hot
from tests.support.chain import MINT, assert_refused, key

SALT = b"\x07" * 32


@pytest.fixture
def net(tmp_path: Path) -> Network:
    network = build(tmp_path, {"v1": 500 * MINT, "v2": 300 * MINT}, ("m1", "m2"), extra_accounts=("outsider",))
    network.ok("v1", MsgAddStake(1, key(hot("v1")).address, MINT))
    return network


@pytest.fixture
def cr_net(tmp_path: Path) -> Network:
    """Commit-reveal on, with v1's commit made in the current epoch."""
    network = build(tmp_path, {"v1": 500 * MINT}, ("m1", "m2"), commit_reveal=1)
    uids = [network.uid("m1"), network.uid("m2")]
    digest = commit_hash(1, key(hot("v1")).address, uids, [60_000, 5_000], SALT)
    network.ok(hot("v1"), MsgCommitWeights(1, digest))
    return network


def module_state(net: Network) -> list[tuple[bytes, bytes]]:
    """Subnet, stake and weight state, less the emission that accrues every block regardless."""
    view = CommittedView(net.app.store)
    return [(k, v) for prefix in (b"subnets/", b"staking/", b"weights/") for k, v in view.scan(prefix)
            if not k.startswith(b"subnets/pending/")]


def refuse(net: Network, signer: str, message: Msg, expected: str) -> None:
    assert_refused(net, signer, message, expected, lambda: module_state(net))


def m_uid(net: Network, name: str) -> int:
    return net.uid(name)


CASES: dict[str, tuple[str, Callable[[Network], Msg], str]] = {
    "register on a missing subnet": ("outsider", lambda n: MsgRegister(9, key(hot("outsider")).address, 0),
                                     "subnet_not_found"),
    "registration above the caller's limit": ("outsider", lambda n: MsgRegister(1, key(hot("outsider")).address, 1),
                                              "burn_above_limit"),
    "register a hotkey twice": ("m1", lambda n: MsgRegister(1, key(hot("m1")).address, 0), "hotkey_registered"),
    "register someone else's hotkey": ("outsider", lambda n: MsgRegister(1, key(hot("m1")).address, 0),
                                       "hotkey_registered"),
    "weights from a non-validator": (hot("m1"), lambda n: MsgSetWeights(1, [m_uid(n, "m2")], [1]), "no_permit"),
    "weights for unknown UIDs": (hot("v1"), lambda n: MsgSetWeights(1, [m_uid(n, "m1"), 77], [5, 5]), "unknown_uid"),
    "duplicate UIDs": (hot("v1"), lambda n: MsgSetWeights(1, [m_uid(n, "m1"), m_uid(n, "m1")], [5, 5]),
                       "duplicate_uid"),
    "uids and weights of different lengths": (hot("v1"), lambda n: MsgSetWeights(1, [m_uid(n, "m1")], [5, 5]),
                                              "length_mismatch"),
    "all-zero weights": (hot("v1"), lambda n: MsgSetWeights(1, [m_uid(n, "m1")], [0]), "too_few_weights"),
    "stake more than the balance": ("v2", lambda n: MsgAddStake(1, key(hot("v2")).address, 10**6 * MINT),
                                    "insufficient_funds"),
    "stake to an unregistered hotkey": ("v2", lambda n: MsgAddStake(1, key("nobody").address, MINT),
                                        "not_registered"),
    "stake below the minimum": ("v2", lambda n: MsgAddStake(1, key(hot("v2")).address, 999_999),
                                "stake_below_minimum"),
    "unstake more than staked": ("v2", lambda n: MsgRemoveStake(1, key(hot("v2")).address, 10_000 * MINT),
                                 "not_enough_stake"),
    "unstake from a hotkey never staked to": ("outsider", lambda n: MsgRemoveStake(1, key(hot("v1")).address, 1),
                                              "not_enough_stake"),
    "endpoint that is not http(s)": (hot("m1"), lambda n: MsgAnnounceEndpoint(1, "ftp://x.org", [], 1, 1),
                                     "invalid_endpoint"),
    "endpoint URL too long": (hot("m1"), lambda n: MsgAnnounceEndpoint(1, "https://a.io/" + "x" * 300, [], 1, 1),
                              "invalid_endpoint"),
    "endpoint port above 65535": (hot("m1"), lambda n: MsgAnnounceEndpoint(1, "http://a:99999", [], 1, 1),
                                  "invalid_endpoint"),
    "endpoint host outside ASCII": (hot("m1"), lambda n: MsgAnnounceEndpoint(1, "http://\u043c\u0438\u0440.io:80", [],
                                                                             1, 1), "invalid_endpoint"),
    "endpoint with userinfo": (hot("m1"), lambda n: MsgAnnounceEndpoint(1, "http://u:p@a.io", [], 1, 1),
                               "invalid_endpoint"),
    "endpoint with a query": (hot("m1"), lambda n: MsgAnnounceEndpoint(1, "http://127.0.0.1:26657/?", [], 1, 1),
                              "invalid_endpoint"),
    "endpoint from an unregistered hotkey": ("outsider", lambda n: MsgAnnounceEndpoint(1, "https://a.io", [], 1, 1),
                                             "not_registered"),
    "parameter outside its bounds": ("owner", lambda n: MsgSetHyperparam(1, "max_uids", 5_000),
                                     "param_out_of_bounds"),
    "bonds alpha below its bound": ("owner", lambda n: MsgSetHyperparam(1, "bonds_alpha", 10),
                                    "param_out_of_bounds"),
    "unknown parameter": ("owner", lambda n: MsgSetHyperparam(1, "speed", 1), "unknown_param"),
    "parameter change by a non-owner": ("v1", lambda n: MsgSetHyperparam(1, "tempo", 20), "not_owner"),
    "take above 18%": ("v1", lambda n: MsgSetTake(key(hot("v1")).address, 20_000), "take_out_of_bounds"),
    "take by another coldkey": ("v2", lambda n: MsgSetTake(key(hot("v1")).address, 100), "not_hotkey_owner"),
    "commit while commit-reveal is off": (hot("v1"), lambda n: MsgCommitWeights(1, bytes(32)), "commit_reveal_off"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_without_a_trace(net: Network, case: str) -> None:
    signer, make, expected = CASES[case]
    refuse(net, signer, make(net), expected)


def reveal(net: Network, weights: list[int], salt: bytes = SALT) -> MsgRevealWeights:
    return MsgRevealWeights(1, [net.uid("m1"), net.uid("m2")], weights, salt)


def test_reveal_too_early(cr_net: Network) -> None:
    refuse(cr_net, hot("v1"), reveal(cr_net, [60_000, 5_000]), "reveal_too_early")


def test_reveal_that_does_not_match_its_commit(cr_net: Network) -> None:
    cr_net.until_epoch()
    refuse(cr_net, hot("v1"), reveal(cr_net, [60_000, 5_001]), "reveal_mismatch")
    refuse(cr_net, hot("v1"), reveal(cr_net, [60_000, 5_000], salt=b"\x08" * 32), "reveal_mismatch")
    cr_net.ok(hot("v1"), reveal(cr_net, [60_000, 5_000]))  # the right one still works


def test_reveal_too_late(cr_net: Network) -> None:
    cr_net.until_epoch()
    cr_net.until_epoch()
    refuse(cr_net, hot("v1"), reveal(cr_net, [60_000, 5_000]), "reveal_too_late")


def test_set_weights_while_commit_reveal_is_on(cr_net: Network) -> None:
    refuse(cr_net, hot("v1"), MsgSetWeights(1, [cr_net.uid("m1")], [1]), "commit_reveal_on")


def test_reveal_without_commit(cr_net: Network) -> None:
    cr_net.until_epoch()
    cr_net.ok(hot("v1"), reveal(cr_net, [60_000, 5_000]))
    refuse(cr_net, hot("v1"), reveal(cr_net, [60_000, 5_000]), "no_commit")


def test_weights_rate_limit(net: Network) -> None:
    net.ok("owner", MsgSetHyperparam(1, "weights_rate_limit", 50))
    net.set_weights("v1", {"m1": 10})
    refuse(net, hot("v1"), MsgSetWeights(1, [net.uid("m2")], [10]), "rate_limited")


def test_max_weight_limit(net: Network) -> None:
    net.ok("owner", MsgSetHyperparam(1, "max_weight_limit", 40_000))
    refuse(net, hot("v1"), MsgSetWeights(1, [net.uid("m1"), net.uid("m2")], [65_535, 1]), "weight_too_high")
