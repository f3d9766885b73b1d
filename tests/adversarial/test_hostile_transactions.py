"""Transactions a stranger (or an authority) can send: each attack below is performed against the real network, and
each ends with the network's health checked (all nodes up, blocks coming, equal app hashes, bounded memory)."""

from __future__ import annotations

import base64

import pytest

from gridmint.chain import codec
from gridmint.chain.app import MESSAGE_TYPES
from gridmint.chain.authority import MsgPropose, MsgVote
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.tx import TX_VERSION, decode_tx
from gridmint.chain.weights import MsgSetWeights
from gridmint.client.chain_client import ChainClient, TxOutcome
from gridmint.node.network import validator_key
from tests.adversarial.hostile_network import ATTACKER, UNFUNDED, HostileNetwork, rss_bytes
from tests.support.chain import CHAIN_ID, key

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cometbft")]

FLOOD = 5_000
# What 5,000 refused transactions may add to an app's memory: they must not be kept (they used to be, ~550 MB).
FLOOD_MEMORY_GROWTH_BOUND = 40 * 2**20


def _broadcast_sync(network: HostileNetwork, raw: bytes, index: int = 0) -> dict[str, object]:
    answer = network.rpc("broadcast_tx_sync", {"tx": base64.b64encode(raw).decode()}, index)
    return answer.get("result") or answer["error"]  # type: ignore[no-any-return]


def _proposal_ids(outcome: TxOutcome) -> list[int]:
    return [int(event["attributes"][0]["value"]) for event in outcome.events if event["type"] == "authority_proposal"]


def test_two_passing_proposals_for_one_key_in_one_block(hostile_network: HostileNetwork) -> None:
    """Two proposals to change one authority's power pass in the same transaction (which used to hand CometBFT two
    updates for one key, and CometBFT halts on that); it must receive one update, the later proposal's."""
    since = min(hostile_network.heights())
    authorities = [validator_key(node) for node in hostile_network.nodes]
    target = authorities[3].public_key
    with hostile_network.client() as client:
        ids = _proposal_ids(client.execute(authorities[0], [MsgPropose("add", target, 11, "node3"),
                                                            MsgPropose("add", target, 12, "node3")]))
        client.execute(authorities[1], [MsgVote(ids[0]), MsgVote(ids[1])])
        passed = client.execute(authorities[2], [MsgVote(ids[0]), MsgVote(ids[1])])  # both pass here
        assert sum(1 for e in passed.events if e["type"] == "authority_change") == 2
        hostile_network.wait_for_height(passed.height + 3)  # an update reaches CometBFT's set two blocks later
        validators = hostile_network.rpc("validators", {"height": str(passed.height + 2)})["result"]["validators"]
        powers = {v["pub_key"]["value"]: int(v["voting_power"]) for v in validators}
        assert powers[base64.b64encode(target).decode()] == 12  # the later proposal wins
        restore = _proposal_ids(client.execute(authorities[0], [MsgPropose("add", target, 10, "node3")]))
        client.execute(authorities[1], [MsgVote(restore[0])])
        client.execute(authorities[2], [MsgVote(restore[0])])
    hostile_network.assert_healthy(since)


def _largest_weights_tx(client: ChainClient, nonce: int, fee: int, max_bytes: int) -> bytes:
    """The biggest transaction the chain admits by size: one weights message with as many entries as fit (decoded,
    each entry is a Python int, so such a transaction costs ~100 KB of memory if kept)."""
    count = max_bytes // 6
    while True:
        uids = list(range(300, 300 + count))
        raw = client.sign(UNFUNDED, [MsgSetWeights(1, uids, uids)], fee, nonce=nonce)
        if len(raw) <= max_bytes:
            return raw
        count -= 20


def test_unfunded_signature_valid_flood(hostile_network: HostileNetwork) -> None:
    """5,000 correctly signed transactions of the largest size from a key that holds nothing: each refused at
    check_tx with its code, none kept by the app (the verified-transaction cache used to keep every one whose
    signature verified: ~550 MB for 5,000)."""
    since = min(hostile_network.heights())
    before = rss_bytes(hostile_network.app_pid(hostile_network.nodes[0]))
    with hostile_network.client() as client:
        max_bytes = int(client.query("/app/info")["tx_params"]["max_tx_bytes"])
        probe = _largest_weights_tx(client, 1, 0, max_bytes)
        # what it would have to pay
        fee = client.required_fee(list(decode_tx(probe, max_bytes, types=MESSAGE_TYPES).body.messages))
        codes = set()
        for nonce in range(1, FLOOD + 1):
            result = _broadcast_sync(hostile_network, _largest_weights_tx(client, nonce, fee, max_bytes))
            assert int(result["code"]) != 0 and result["codespace"], result  # type: ignore[call-overload]
            codes.add((result["codespace"], int(result["code"])))  # type: ignore[call-overload]
    assert ("bank", 1) in codes, codes  # insufficient funds for the fee
    grown = rss_bytes(hostile_network.app_pid(hostile_network.nodes[0])) - before
    assert grown < FLOOD_MEMORY_GROWTH_BOUND, f"the flood added {grown / 2**20:.0f} MB to the app"
    hostile_network.assert_healthy(since)


def _raw_signed(key: PrivateKey, nonce: int, fee: int, messages: list[list[object]]) -> bytes:
    """A signed envelope whose messages are written by hand, so that their fields can be anything."""
    body = codec.encode([TX_VERSION, CHAIN_ID, key.public_key, nonce, fee, messages, ""])
    return codec.encode([body, key.sign(body)])


OUT_OF_RANGE_MESSAGES: list[list[object]] = [
    ["subnets/set_param", 99_999, "tempo", 2], ["subnets/set_param", 1, "tempo", 2**64],
    ["subnets/register", 2**16, ATTACKER.address, 0], ["subnets/dissolve", -1],
    ["bank/send", ATTACKER.address, 2**64], ["bank/send", ATTACKER.address, 0], ["bank/send", b"\x00" * 21, 1],
    ["authority/vote", 2**64], ["subnets/announce", 1, "http://a:99999", [], 2**64, 1],
]


def test_out_of_range_message_fields(hostile_network: HostileNetwork) -> None:
    """Each message is refused with a code and changes nothing. The sender is a key of its own, funded here: the
    attacker owns subnets, so its balance grows by the owner's share at every epoch."""
    since = min(hostile_network.heights())
    sender = key("out-of-range sender")
    address = format_address(sender.address)
    with hostile_network.client() as client:
        fee = int(client.query("/bank/params")["min_tx_fee"]) * 100
        client.send(ATTACKER, [MsgSend(sender.address, fee * 10)])
        nonce = client.nonce(address) + 1
        balance = client.balance(address)
        for message in OUT_OF_RANGE_MESSAGES:
            result = _broadcast_sync(hostile_network, _raw_signed(sender, nonce, fee, [message]))
            assert int(result["code"]) != 0 and result["codespace"], (message, result)  # type: ignore[call-overload]
        assert client.nonce(address) == nonce - 1
        assert client.balance(address) == balance
    hostile_network.assert_healthy(since)
