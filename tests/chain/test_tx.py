"""Messages declared once (tx.message): each field with its codec in its type, the wire name in the decorator, and
``TYPE``/``FIELDS`` derived from that — so the wire form is the declaration, and it stays what it was."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Annotated

import pytest

from gridmint.chain import codec
from gridmint.chain.app import MESSAGE_TYPES
from gridmint.chain.bank import MsgSend
from gridmint.chain.errors import BAD_SIGNATURE, MALFORMED, OVERSIZE, ChainError
from gridmint.chain.fields import U64, Address, Amount, address, amount, describe, text, u64
from gridmint.chain.market import MsgBid
from gridmint.chain.tx import Msg, decode_message, decode_tx, message, signatures_hold
from tests.support.chain import forged, key, signed


@message("test/example")
class MsgExample(Msg):
    """A message of this test only (never registered with the app)."""

    order_id: U64
    to: Address
    label: Annotated[str, text(8)]
    price: Amount


def test_a_declaration_gives_the_wire_name_and_the_fields_in_declared_order() -> None:
    assert MsgExample.TYPE == "test/example"
    assert [name for name, _ in MsgExample.FIELDS] == ["order_id", "to", "label", "price"]
    checks = dict(MsgExample.FIELDS)
    assert (checks["order_id"], checks["to"], checks["price"]) == (u64, address, amount)
    assert describe(checks["label"]) == "text (≤ 8 bytes)"


def test_a_declared_message_is_a_frozen_dataclass_that_round_trips_the_wire() -> None:
    sent = MsgExample(7, b"\x01" * 20, "gpu", 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sent.price = 6  # type: ignore[misc]
    assert sent.to_wire() == ["test/example", 7, b"\x01" * 20, "gpu", 5]
    assert decode_message(codec.decode(codec.encode(sent.to_wire())), {MsgExample.TYPE: MsgExample}) == sent


def test_each_declared_codec_checks_its_field_on_the_way_in() -> None:
    types = {MsgExample.TYPE: MsgExample}
    with pytest.raises(ChainError, match=r"test/example.label: longer than 8 bytes"):
        decode_message(["test/example", 7, b"\x01" * 20, "too long a label", 5], types)
    with pytest.raises(ChainError, match=r"test/example.price: amount must be positive"):
        decode_message(["test/example", 7, b"\x01" * 20, "gpu", 0], types)


def test_a_field_without_a_codec_is_refused_when_the_class_is_declared() -> None:
    with pytest.raises(TypeError, match=r"MsgPlain.amount: declare the field with its codec"):

        @message("test/plain")
        class MsgPlain(Msg):
            to: Address
            amount: int

    with pytest.raises(TypeError, match=r"MsgTwice.amount: declare the field with its codec"):

        @message("test/twice")
        class MsgTwice(Msg):
            amount: Annotated[int, u64, amount]


def test_every_registered_message_is_declared_so() -> None:
    for wire_name, cls in MESSAGE_TYPES.items():
        assert wire_name == cls.TYPE
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen, cls
        assert [name for name, _ in cls.FIELDS] == [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


# The wire form of every message: field names in wire order, and each field's codec (its words in docs/chain.md).
# Changing either breaks every signed transaction in flight and every client: deliberate only, with a new version.
WIRE_FIELDS = {
    "bank/send": ("to", "amount"),
    "authority/propose": ("action", "pub_key", "power", "name"),
    "authority/vote": ("proposal_id",),
    "subnets/create": ("modality", "name"),
    "subnets/set_param": ("netuid", "param", "value"),
    "subnets/dissolve": ("netuid",),
    "subnets/register": ("netuid", "hotkey", "max_burn"),
    "subnets/announce": ("netuid", "url", "models", "price_per_1k", "protocol_version"),
    "staking/add": ("netuid", "hotkey", "amount"),
    "staking/remove": ("netuid", "hotkey", "amount"),
    "staking/set_take": ("hotkey", "take"),
    "weights/set": ("netuid", "uids", "weights"),
    "weights/commit": ("netuid", "hash"),
    "weights/reveal": ("netuid", "uids", "weights", "salt"),
    "market/register_provider": ("host_uri", "gpu_model", "gpu_count", "vram_gb", "cpu_millis", "memory_mb",
                                 "storage_mb", "region", "tags", "bond"),
    "market/create_deployment": ("cpu_millis", "memory_mb", "gpu_units", "gpu_models", "min_vram_gb", "max_price",
                                 "manifest_hash", "deposit"),
    "market/bid": ("order_id", "price"),
    "market/accept_bid": ("order_id", "provider"),
    "market/close_lease": ("lease_id", "reason"),
    "market/withdraw": ("lease_id",),
    "market/top_up": ("lease_id", "amount"),
    "market/close_deployment": ("order_id",),
    "credit/register_gateway": ("url", "fee_bps", "bond"),
    "credit/open": ("gateway", "amount", "duration", "max_price_per_1k", "max_fee_bps", "cap", "cap_period"),
    "credit/top_up": ("gateway", "amount", "extend"),
    "credit/close": ("gateway",),
    "credit/settle": ("batch", "entries"),
    "credit/claim": ("gateway", "gateway_key", "entries"),
    "credit/reclaim": ("gateway",),
    "commitments/commit": ("netuid", "hash", "data"),
}
# sha256 of "<type> <field>: <codec in words>" lines, types sorted (the same before and after issue 21's restyle).
CODECS_DIGEST = "b6ee44cf0c6417d8f4e1d0853b3861f635df3f98fb8dabce6048a5d49850ec2c"


def test_the_wire_form_of_every_message_stays_what_it_was() -> None:
    assert {name: tuple(field for field, _ in cls.FIELDS) for name, cls in MESSAGE_TYPES.items()} == WIRE_FIELDS
    listing = "\n".join(f"{name} {field}: {describe(check)}"
                        for name in sorted(MESSAGE_TYPES) for field, check in MESSAGE_TYPES[name].FIELDS)
    assert hashlib.sha256(listing.encode()).hexdigest() == CODECS_DIGEST, listing


def test_known_message_bytes() -> None:
    assert codec.encode(MsgBid(7, 5).to_wire()).hex() == "93aa6d61726b65742f6269640705"
    assert codec.encode(MsgSend(b"\x02" * 20, 10**9).to_wire()).hex() == (
        "93a962616e6b2f73656e64c414" + "02" * 20 + "ce3b9aca00")


def test_signatures_hold_for_exactly_the_envelopes_whose_signature_verifies() -> None:
    good = signed(key("alice"), 1, MsgSend(key("bob").address, 1))
    short = codec.encode([codec.decode(good)[0], b"\x01" * 63])
    envelopes = [good, forged(good), forged(good, key("bob")), short, b"garbage", codec.encode([1, 2]), b""]
    assert signatures_hold(envelopes) == [True, False, False, False, False, False, False]


def test_a_signature_verified_elsewhere_is_not_verified_again_and_everything_else_still_is() -> None:
    good = signed(key("alice"), 1, MsgSend(key("bob").address, 1))
    with pytest.raises(ChainError) as refused:
        decode_tx(forged(good), types=MESSAGE_TYPES)
    assert refused.value.kind == BAD_SIGNATURE
    # The flag is the caller's word that signatures_hold said True for these bytes: the verification is skipped...
    assert decode_tx(forged(good), types=MESSAGE_TYPES, signature_verified=True).body.nonce == 1
    # ...and nothing else is: the envelope, the body and its messages are checked as ever.
    with pytest.raises(ChainError) as refused:
        decode_tx(b"garbage", types=MESSAGE_TYPES, signature_verified=True)
    assert refused.value.kind == MALFORMED
    with pytest.raises(ChainError) as refused:
        decode_tx(good, 10, types=MESSAGE_TYPES, signature_verified=True)
    assert refused.value.kind == OVERSIZE
