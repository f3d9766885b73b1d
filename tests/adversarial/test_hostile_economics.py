"""Attacks that pay to make the chain work or grow: a lock ratchet, the worst subnet the bounds allow, dust stakes.
Each is performed on the real network through signed transactions, and each ends with the health check."""

from __future__ import annotations

import re

import pytest

from gridmint.chain import staking, subnets
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import FEE_TOO_LOW, ChainError
from gridmint.client.chain_client import ChainClient, TxOutcome
from tests.adversarial.hostile_network import ATTACKER, HostileNetwork
from tests.support.chain import MINT
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cometbft")]

MIN_LOCK = 10 * MINT  # the catalogue's genesis (conftest.py)
LOCK_DECAY_PERIOD = 20


def _created_netuid(outcome: TxOutcome) -> int:
    return int(next(a["value"] for e in outcome.events if e["type"] == "subnet_created"
                    for a in e["attributes"] if a["key"] == "netuid"))


def _lock_cost(client: ChainClient) -> int:
    return int(client.query("/subnets/lock_cost")["lock_cost"])


def test_lock_ratchet_decays_back_to_the_minimum(hostile_network: HostileNetwork) -> None:
    """Six create/dissolve pairs in one transaction double the lock six times (each lock is returned, so the
    attacker keeps its funds); the lock used to settle at 32× for good. It must decay back to ``min_lock``."""
    since = min(hostile_network.heights())
    with hostile_network.client() as client:
        first = _created_netuid(client.execute(ATTACKER, [subnets.MsgCreateSubnet("text-generation", "probe")]))
        pairs: list[subnets.MsgCreateSubnet | subnets.MsgDissolveSubnet] = [subnets.MsgDissolveSubnet(first)]
        for netuid in range(first + 1, first + 7):
            pairs += [subnets.MsgCreateSubnet("text-generation", "ratchet"), subnets.MsgDissolveSubnet(netuid)]
        attack = client.execute(ATTACKER, pairs)
        raised = _lock_cost(client)
        assert raised >= 64 * MIN_LOCK, raised
        hostile_network.wait_for_height(attack.height + 2 * LOCK_DECAY_PERIOD + 1)
        assert _lock_cost(client) == MIN_LOCK
    hostile_network.assert_healthy(since)


def test_worst_subnet_the_bounds_allow(hostile_network: HostileNetwork) -> None:
    """A subnet owner asks for the most expensive epoch: every UID, every validator, the shortest tempo, no burn.
    Beyond the caps, or at a tempo too short for its share of the epoch budget, it is refused with a code and
    changes nothing; at the bounds it is allowed, and pays for the epochs it will cause."""
    since = min(hostile_network.heights())
    with hostile_network.client() as client:
        netuid = _created_netuid(client.execute(ATTACKER, [subnets.MsgCreateSubnet("text-generation", "worst")]))
        before = client.query(f"/subnets/{netuid}")["params"]
        for param, value, code in (("max_uids", subnets.MAX_UIDS_CAP + 1, subnets.PARAM_OUT_OF_BOUNDS),
                                   ("max_validators", subnets.MAX_VALIDATORS_CAP + 1, subnets.PARAM_OUT_OF_BOUNDS)):
            with pytest.raises(ChainError) as refused:
                client.execute(ATTACKER, [subnets.MsgSetHyperparam(netuid, param, value)])
            assert refused.value.kind == code
        shape = [subnets.MsgSetHyperparam(netuid, "max_uids", subnets.MAX_UIDS_CAP),
                 subnets.MsgSetHyperparam(netuid, "max_validators", subnets.MAX_VALIDATORS_CAP),
                 subnets.MsgSetHyperparam(netuid, "tempo", 2)]
        with pytest.raises(ChainError) as too_costly:
            client.execute(ATTACKER, shape)
        assert too_costly.value.kind == subnets.EPOCH_TOO_COSTLY
        assert client.query(f"/subnets/{netuid}")["params"] == before
        shortest = int(re.search(r"tempo of at least (\d+)", too_costly.value.message).group(1))  # type: ignore[union-attr]
        worst = [*shape[:2], subnets.MsgSetHyperparam(netuid, "tempo", shortest),
                 subnets.MsgSetHyperparam(netuid, "burn_min", 0), subnets.MsgSetHyperparam(netuid, "burn_initial", 0)]
        fee = client.required_fee(worst)
        assert fee >= MINT, f"the worst shape costs only {fee} grains"  # it prepays the work of its epochs
        with pytest.raises(ChainError) as underpaid:
            client.send(ATTACKER, worst, fee - 1)
        assert underpaid.value.kind == FEE_TOO_LOW
        paid = client.send(ATTACKER, worst, fee)
        assert paid.ok, paid.log
        hotkeys = [PrivateKey(bytes([7, i]) * 16) for i in range(6)]
        for hotkey in hotkeys:  # each registration rewrites 4,096-entry vectors: paid per UID of the shape
            client.execute(ATTACKER, [subnets.MsgRegister(netuid, hotkey.address, 0)])
        graph = client.query(f"/subnets/{netuid}")
        assert graph["n"] == len(hotkeys) and graph["params"]["tempo"] == shortest
        hostile_network.wait_for_height(paid.height + shortest + len(hotkeys) + 2)  # an epoch falls due
    hostile_network.assert_healthy(since)


def test_dust_stake_spam(hostile_network: HostileNetwork) -> None:
    """Sixteen 1-grain stakes per transaction are refused with their code and change nothing; stakes at the
    minimum are accepted and each pays its fee."""
    since = min(hostile_network.heights())
    with hostile_network.client() as client:
        netuid = _created_netuid(client.execute(ATTACKER, [subnets.MsgCreateSubnet("embedding", "dust")]))
        validator = PrivateKey(b"\x09" * 32)
        client.execute(ATTACKER, [subnets.MsgRegister(netuid, validator.address, 0)])
        stakes_before = client.query(f"/staking/stakes/{format_address(ATTACKER.address)}")
        for _ in range(5):
            with pytest.raises(ChainError) as refused:
                client.execute(ATTACKER, [staking.MsgAddStake(netuid, validator.address, 1)] * 16)
            assert refused.value.kind == staking.STAKE_BELOW_MINIMUM
        assert client.query(f"/staking/stakes/{format_address(ATTACKER.address)}") == stakes_before
        minimum = int(client.query("/staking/params")["min_stake"])
        stakes = [staking.MsgAddStake(netuid, validator.address, minimum)] * 16
        assert client.required_fee(stakes) > 16 * client.required_fee(stakes[:1]) // 2  # priced per message
        client.execute(ATTACKER, stakes)
        wait_for(lambda: client.query(f"/staking/hotkey/{netuid}/{format_address(validator.address)}")["total"]
                 >= 16 * minimum, "the 16 stakes to be committed", timeout_s=30, interval_s=0.2)
    hostile_network.assert_healthy(since)
