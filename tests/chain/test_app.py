"""The app's transaction path: what check_tx keeps and records, and what it remembers between calls (only
transactions that passed, within a byte bound)."""

from __future__ import annotations

import tracemalloc

import pytest

from gridmint.chain import app as app_module
from gridmint.chain import tx as tx_module
from gridmint.chain.app import MESSAGE_TYPES
from gridmint.chain.bank import MsgSend
from gridmint.chain.errors import ChainError
from gridmint.chain.tx import ABSOLUTE_MAX_TX_BYTES, Msg, decode_tx
from gridmint.chain.weights import MAX_WEIGHTS, MsgSetWeights
from tests.support.chain import START_BALANCE, Chain, balances, key, signed, snapshot


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


def count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The signatures verified from now on, in order (ed25519 verify wrapped)."""
    calls: list[bytes] = []
    real_verify = tx_module.verify

    def counting_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        calls.append(signature)
        return real_verify(public_key, message, signature)

    monkeypatch.setattr(tx_module, "verify", counting_verify)
    return calls


def test_a_signature_is_verified_once_for_check_recheck_proposal_and_block(chain: Chain,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_verifications(monkeypatch)
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


def test_refused_signature_valid_transactions_are_never_cached(chain: Chain) -> None:
    """A flood from a key with no funds: every signature verifies, every transaction is refused, nothing stays."""
    stranger = key("stranger")
    for nonce in range(1, 5_001):
        result = chain.app.check_tx(signed(stranger, nonce, MsgSend(key("bob").address, 5)))
        assert result.codespace in ("bank", "tx") and not result.ok
    assert chain.app.verified_cache_bytes == 0


def test_the_cache_keeps_to_its_byte_bound_evicting_the_oldest(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    bound = 20 * app_module.VERIFIED_ENTRY_OVERHEAD
    monkeypatch.setattr(app_module, "VERIFIED_CACHE_BYTES", bound)
    calls = count_verifications(monkeypatch)
    txs = [signed(key("alice"), nonce, MsgSend(key("bob").address, 5)) for nonce in range(1, 101)]
    for raw in txs:
        assert chain.app.check_tx(raw).ok
        assert 0 < chain.app.verified_cache_bytes <= bound
    kept = bound // app_module.cached_footprint(chain.app.decode_verified(txs[-1]))
    assert len(calls) == 100
    chain.app.decode_verified(txs[-1])
    chain.app.decode_verified(txs[-kept])
    assert len(calls) == 100, "the newest transactions are still cached"
    chain.app.decode_verified(txs[0])
    assert len(calls) == 101, "the oldest was evicted"


def test_a_transaction_that_stops_passing_leaves_the_cache(chain: Chain) -> None:
    raw = signed(key("alice"), 1, MsgSend(key("bob").address, 5))
    assert chain.app.check_tx(raw).ok and chain.app.verified_cache_bytes > 0
    chain.block(signed(key("alice"), 1, MsgSend(key("bob").address, 6)))  # another transaction takes nonce 1
    assert not chain.app.check_tx(raw).ok
    assert chain.app.verified_cache_bytes == 0


@pytest.mark.parametrize("uids", [0, 1_000, MAX_WEIGHTS])
def test_the_cache_footprint_estimate_is_not_below_the_memory_a_transaction_holds(uids: int) -> None:
    message: Msg = (MsgSetWeights(1, list(range(uids)), [65_535 - u for u in range(uids)]) if uids
                    else MsgSend(key("bob").address, 5))
    raws = [signed(key("alice"), nonce, message, message) for nonce in range(1, {0: 102, 1_000: 22}.get(uids, 7))]
    # first-use allocations (caches of the decoder) are not per tx
    decode_tx(raws.pop(), ABSOLUTE_MAX_TX_BYTES, types=MESSAGE_TYPES)
    tracemalloc.start()
    decoded = [decode_tx(raw, ABSOLUTE_MAX_TX_BYTES, types=MESSAGE_TYPES) for raw in raws]
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_tx = held // len(raws) + len(raws[0])
    assert app_module.cached_footprint(decoded[0]) >= per_tx
    assert app_module.cached_footprint(decoded[0]) <= 2 * per_tx + app_module.VERIFIED_ENTRY_OVERHEAD
