"""Every kind of bad transaction is refused with its own code, and leaves app hash and balances unchanged.

Each case goes through ``check_tx`` (the mempool's door) and, where a proposer could still put it in a block,
through ``finalize_block`` + ``commit``: a transaction invalid at its envelope changes nothing at all.
"""

from __future__ import annotations

import pytest

from gridmint.chain import codec
from gridmint.chain.bank import MsgSend
from gridmint.chain.errors import lookup
from gridmint.chain.tx import TxBody
from gridmint.chain.units import format_mint
from tests.support.chain import CHAIN_ID, FEE, MIN_TX_FEE, MINT, START_BALANCE, Chain, key, signed, snapshot

ALICE, BOB = key("alice"), key("bob")


def send(amount: int = MINT) -> MsgSend:
    return MsgSend(BOB.address, amount)


def tampered_signature() -> bytes:
    body_bytes, signature = codec.decode(signed(ALICE, 1, send()))
    return codec.encode([body_bytes, bytes([signature[0] ^ 1]) + signature[1:]])


def signed_by_other_key() -> bytes:
    body = TxBody(CHAIN_ID, ALICE.public_key, 1, FEE, (send(),))
    return codec.encode([body.encode(), BOB.sign(body.encode())])


def unknown_message() -> bytes:
    body = codec.encode([1, CHAIN_ID, ALICE.public_key, 1, FEE, [["bank/mint", BOB.address, MINT]], ""])
    return codec.encode([body, ALICE.sign(body)])


def raw_body(*fields: object) -> bytes:
    body = codec.encode(list(fields))
    return codec.encode([body, ALICE.sign(body)])


CASES = {
    "bad signature": (tampered_signature, "tx", "bad_signature"),
    "signature by another key": (signed_by_other_key, "tx", "bad_signature"),
    "wrong chain_id": (lambda: signed(ALICE, 1, send(), chain_id="gridmint-other"), "tx", "wrong_chain_id"),
    "nonce from the future": (lambda: signed(ALICE, 2, send()), "tx", "nonce_future"),
    "insufficient funds for amount": (lambda: signed(ALICE, 1, send(START_BALANCE)), "bank", "insufficient_funds"),
    "insufficient funds for fee": (lambda: signed(ALICE, 1, send(), fee=START_BALANCE + 1), "bank",
                                   "insufficient_funds"),
    "fee below minimum": (lambda: signed(ALICE, 1, send(), fee=MIN_TX_FEE), "tx", "fee_too_low"),
    "fee one grain short of the send's": (lambda: signed(ALICE, 1, send(), fee=MIN_TX_FEE + 100 * 30 - 1), "tx",
                                          "fee_too_low"),
    "zero amount": (lambda: raw_body(1, CHAIN_ID, ALICE.public_key, 1, FEE, [["bank/send", BOB.address, 0]], ""),
                    "bank", "invalid_amount"),
    "negative amount": (lambda: raw_body(1, CHAIN_ID, ALICE.public_key, 1, FEE, [["bank/send", BOB.address, -5]],
                                         ""), "bank", "invalid_amount"),
    "unknown message type": (unknown_message, "tx", "unknown_message"),
    "malformed bytes": (lambda: b"\x92\xc4\x03abc", "tx", "malformed"),
    "not even msgpack": (lambda: b"hello world", "tx", "malformed"),
    "oversize transaction": (lambda: signed(ALICE, 1, send(), memo="x" * 200) + b"\x00" * 9000, "tx", "oversize"),
    "transfer to an invalid address": (
        lambda: raw_body(1, CHAIN_ID, ALICE.public_key, 1, FEE, [["bank/send", b"\x01" * 19, MINT]], ""),
        "tx", "invalid_address"),
    "wrong field type": (
        lambda: raw_body(1, CHAIN_ID, ALICE.public_key, 1, FEE, [["bank/send", BOB.address, "100"]], ""),
        "tx", "invalid_field"),
    "unsupported version": (lambda: raw_body(2, CHAIN_ID, ALICE.public_key, 1, FEE, [], ""), "tx",
                            "unsupported_version"),
    "no messages": (lambda: raw_body(1, CHAIN_ID, ALICE.public_key, 1, FEE, [], ""), "tx", "too_many_messages"),
    "memo too long": (lambda: signed(ALICE, 1, send(), memo="m" * 300), "tx", "memo_too_long"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_tx_refuses_and_changes_nothing(chain: Chain, case: str) -> None:
    make, module, name = CASES[case]
    chain.block()
    before = snapshot(chain.app)
    result = chain.app.check_tx(make())
    assert (result.code != 0, result.codespace) == (True, module)
    assert registered_name(module, result.code) == name, result.log
    assert result.log  # a sentence, not just a number
    assert snapshot(chain.app) == before


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][2] not in ("insufficient_funds",)))
def test_a_block_holding_it_changes_nothing(chain: Chain, case: str) -> None:
    """A proposer may include what the mempool refused; executing it must not change state at all."""
    make, _, name = CASES[case]
    chain.block()
    before = snapshot(chain.app)
    (result,) = chain.block(make())
    assert registered_name(result.codespace, result.code) == name
    assert (snapshot(chain.app)[0], snapshot(chain.app)[2]) == (before[0], before[2])


def test_insufficient_funds_for_amount_in_a_block_keeps_only_fee_and_nonce(chain: Chain) -> None:
    chain.block()
    _, _, before = snapshot(chain.app)
    (result,) = chain.block(signed(ALICE, 1, send(START_BALANCE)))
    assert registered_name(result.codespace, result.code) == "insufficient_funds"
    assert f"balance {format_mint(START_BALANCE - FEE)}, needed 1000.0 MINT" in result.log
    _, _, after = snapshot(chain.app)
    assert after == {**before, "alice": before["alice"] - FEE}
    assert chain.app.check_tx(signed(ALICE, 1, send())).codespace == "tx"  # nonce 1 is spent


def test_replayed_nonce(chain: Chain) -> None:
    tx = signed(ALICE, 1, send())
    assert chain.block(tx)[0].code == 0
    before = snapshot(chain.app)
    result = chain.app.check_tx(tx)
    assert registered_name(result.codespace, result.code) == "nonce_replayed"
    (in_block,) = chain.block(tx)
    assert registered_name(in_block.codespace, in_block.code) == "nonce_replayed"
    assert (snapshot(chain.app)[0], snapshot(chain.app)[2]) == (before[0], before[2])


def test_failed_message_in_a_multi_message_tx_undoes_the_earlier_ones(chain: Chain) -> None:
    chain.block()
    _, _, before = snapshot(chain.app)
    tx = signed(ALICE, 1, MsgSend(BOB.address, 5 * MINT), MsgSend(BOB.address, START_BALANCE))
    (result,) = chain.block(tx)
    assert result.code != 0
    _, _, after = snapshot(chain.app)
    assert after["bob"] == before["bob"] and after["alice"] == before["alice"] - FEE


def registered_name(module: str, code: int) -> str:
    kind = lookup(module, code)
    assert kind is not None, f"unregistered error {module}/{code}"
    return kind.name
