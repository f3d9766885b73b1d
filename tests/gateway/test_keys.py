"""API keys: only the account's key can get one, a challenge works once, and keys survive a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.gateway.keys import ApiKeys, key_message
from gridmint.gateway.ledger import open_db
from tests.helpers import key

GATEWAY = format_address(key("gateway").address)


def keys(path: Path) -> ApiKeys:
    return ApiKeys(open_db(str(path / "gateway.db")), GATEWAY)


def proof(name: str, challenge: str) -> tuple[str, str]:
    signer = key(name)
    address = format_address(signer.address)
    return signer.public_key.hex(), signer.sign(key_message(GATEWAY, address, challenge)).hex()


def test_a_signed_challenge_gets_a_key_that_survives_a_restart(tmp_path: Path) -> None:
    book = keys(tmp_path)
    alice = format_address(key("alice").address)
    api_key = book.issue(alice, *proof("alice", book.challenge(alice)))
    assert book.lookup(api_key) == alice and keys(tmp_path).lookup(api_key) == alice
    assert book.lookup("gmk_" + "x" * 40) is None and book.lookup("sk-anything") is None
    stored = open_db(str(tmp_path / "gateway.db")).execute("SELECT digest FROM api_keys").fetchone()[0]
    assert api_key not in stored


@pytest.mark.parametrize("case", ["other key", "wrong challenge", "reused challenge", "no challenge", "not hex"])
def test_proofs_that_do_not_hold_are_refused(tmp_path: Path, case: str) -> None:
    book = keys(tmp_path)
    alice = format_address(key("alice").address)
    challenge = book.challenge(alice)
    public, signature = proof("alice", challenge)
    if case == "other key":
        public, signature = proof("mallory", challenge)
    elif case == "wrong challenge":
        public, signature = proof("alice", "00" * 16)
    elif case == "reused challenge":
        book.issue(alice, public, signature)
    elif case == "no challenge":
        book.challenge(format_address(key("bob").address))
        alice = format_address(key("bob").address)
        book._challenges.pop(alice)
    elif case == "not hex":
        signature = "zz"
    with pytest.raises(ChainError) as caught:
        book.issue(alice, public, signature)
    assert caught.value.kind.name in ("bad_proof", "bad_challenge")


def test_a_challenge_needs_an_address(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="not an address"):
        keys(tmp_path).challenge("alice")
