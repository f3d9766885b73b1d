"""The app's transaction path: what check_tx keeps and records, and what it remembers between calls."""

from __future__ import annotations

import pytest

from gridmint.chain import tx as tx_module
from gridmint.chain.bank import MsgSend
from gridmint.chain.errors import ChainError
from tests.helpers import START_BALANCE, Chain, balances, key, signed, snapshot


def test_check_tx_admits_without_recording_events_and_the_block_records_them(chain: Chain) -> None:
    raw = signed(key("alice"), 1, MsgSend(key("bob").address, 5))
    checked = chain.app.check_tx(raw)
    assert checked.ok and checked.events == []
    [delivered] = chain.block(raw)
    assert delivered.ok
    assert [event.type for event in delivered.events] == ["fee", "transfer"]
    assert dict(delivered.events[1].attributes)["amount"] == "5"


def test_a_failing_check_names_its_error_and_changes_nothing(chain: Chain) -> None:
    before = snapshot(chain.app)
    result = chain.app.check_tx(signed(key("alice"), 1, MsgSend(key("bob").address, START_BALANCE * 2)))
    assert (result.codespace, result.code) != ("", 0) and "insufficient funds" in result.log
    assert result.events == []
    assert snapshot(chain.app) == before


def test_a_signature_is_verified_once_for_check_recheck_proposal_and_block(chain: Chain,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real_verify = tx_module.verify

    def counting_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        calls.append(signature)
        return real_verify(public_key, message, signature)

    monkeypatch.setattr(tx_module, "verify", counting_verify)
    first, second = (signed(key("alice"), nonce, MsgSend(key("bob").address, 5)) for nonce in (1, 2))

    def copy(raw: bytes) -> bytes:  # equal bytes in a new object, as each ABCI request brings them
        return bytes(bytearray(raw))

    assert chain.app.check_tx(first).ok and chain.app.check_tx(second).ok
    chain.app.decode_verified(copy(first))  # the proposal
    assert chain.block(copy(first))[0].ok
    assert chain.app.check_tx(copy(second)).ok  # the recheck after the block
    assert chain.block(copy(second))[0].ok
    assert len(calls) == 2
    assert balances(chain.app, "bob")["bob"] == START_BALANCE + 10


def test_a_tampered_copy_of_a_verified_transaction_is_still_refused(chain: Chain) -> None:
    raw = signed(key("alice"), 1, MsgSend(key("bob").address, 5))
    assert chain.app.check_tx(raw).ok
    tampered = raw.replace(b"\x05", b"\x06", 1)
    assert tampered != raw
    with pytest.raises(ChainError) as refused:
        chain.app.decode_verified(tampered)
    assert refused.value.code != 0
