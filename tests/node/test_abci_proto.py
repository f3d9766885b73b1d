"""The ABCI codec against byte vectors produced by CometBFT v0.38's generated protobuf classes
(../shared/reference/cometbft-abci.md §2.4), and round trips of the messages the app exchanges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridmint.node.abci import messages
from gridmint.node.abci.proto import (
    ProtoError,
    decode,
    decode_oneof,
    decode_uvarint,
    encode,
    encode_oneof,
    encode_uvarint,
    frame,
)

VECTORS = [
    ("request", {"flush": {}}, "02 12 00"),
    ("request", {"echo": {"message": "hi"}}, "06 0a 04 0a 02 68 69"),
    ("request", {"commit": {}}, "02 5a 00"),
    ("request", {"info": {"version": "0.38.25", "block_version": 11, "p2p_version": 8, "abci_version": "2.0.0"}},
     "16 1a 14 0a 07 30 2e 33 38 2e 32 35 10 0b 18 08 22 05 32 2e 30 2e 30"),
    ("response", {"flush": {}}, "02 1a 00"),
    ("response", {"commit": {}}, "02 62 00"),
    ("response", {"process_proposal": {"status": messages.ACCEPT}}, "05 92 01 02 08 01"),
]


@pytest.mark.parametrize(("side", "message", "expected"), VECTORS)
def test_bytes_match_cometbft(side: str, message: dict[str, object], expected: str) -> None:
    schema = messages.REQUESTS if side == "request" else messages.RESPONSES
    [(case, body)] = message.items()
    wire = frame(encode_oneof(case, body, schema))  # type: ignore[arg-type]
    assert wire == bytes.fromhex(expected.replace(" ", ""))
    assert frame(encode(message, schema)) == wire  # the oneof written as a message with one field set
    length, start = decode_uvarint(wire, 0)
    decoded_case, decoded = decode_oneof(wire[start:start + length], schema)
    assert decoded_case == case and decoded == {**decoded, **body}  # type: ignore[dict-item]


def test_a_oneof_takes_its_last_known_case_and_needs_one() -> None:
    schema = {1: ("first", {1: ("n", "uint64")}), 2: ("second", {1: ("n", "uint64")})}
    wire = encode({"first": {"n": 1}}, schema) + encode({"second": {"n": 2}}, schema) + bytes.fromhex("1a00")
    assert decode_oneof(wire, schema) == ("second", {"n": 2})  # field 3 is no case it knows: skipped
    for nothing_known in (b"", bytes.fromhex("1a00")):
        with pytest.raises(ProtoError):
            decode_oneof(nothing_known, schema)


def test_a_finalize_block_response_round_trips() -> None:
    response = {"finalize_block": {
        "events": [{"type": "transfer", "attributes": [{"key": "amount", "value": "5", "index": True}]}],
        "tx_results": [{"code": 0, "data": b"", "log": "", "info": "", "gas_wanted": 0, "gas_used": 0, "events": [],
                        "codespace": ""},
                       {"code": 7, "data": b"\x01", "log": "nonce", "info": "", "gas_wanted": 0, "gas_used": 0,
                        "events": [], "codespace": "tx"}],
        "validator_updates": [{"pub_key": {"ed25519": b"\x02" * 32, "secp256k1": b""}, "power": 10}],
        "app_hash": b"\xaa" * 32}}
    decoded = decode(encode(response, messages.RESPONSES), messages.RESPONSES)
    assert decoded["finalize_block"] == response["finalize_block"]


def test_negative_int64_and_unknown_fields() -> None:
    schema = {1: ("height", "int64")}
    assert decode(encode({"height": -2}, schema), schema) == {"height": -2}
    assert len(encode({"height": -2}, schema)) == 11  # ten varint bytes, as protobuf writes negatives
    with_unknown = encode({"height": 5}, schema) + bytes.fromhex("1a 03 61 62 63".replace(" ", ""))
    assert decode(with_unknown, schema) == {"height": 5}


@pytest.mark.parametrize("broken", ["0a 05 61", "08", "0b 00", "ff ff ff ff ff ff ff ff ff ff ff"])
def test_broken_bytes_are_refused(broken: str) -> None:
    with pytest.raises(ProtoError):
        decode(bytes.fromhex(broken.replace(" ", "")), {1: ("name", "string")})


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_uvarint_round_trips(value: int) -> None:
    encoded = encode_uvarint(value)
    assert decode_uvarint(encoded, 0) == (value, len(encoded))
