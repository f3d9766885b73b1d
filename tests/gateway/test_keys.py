"""API keys: only the account's key can get one, a challenge works once, keys survive a restart, an account holds at
most sixteen, and the consumer resolves the gateway it means from the chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.gateway.keys import MAX_KEYS_PER_ACCOUNT, ApiKeys, gateway_at, key_message
from gridmint.gateway.ledger import open_db
from tests.support.chain import key

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


def test_an_account_holds_at_most_sixteen_keys_and_a_new_one_revokes_the_oldest(tmp_path: Path) -> None:
    book = keys(tmp_path)
    alice = format_address(key("alice").address)
    issued = [book.issue(alice, *proof("alice", book.challenge(alice))) for _ in range(MAX_KEYS_PER_ACCOUNT)]
    assert all(book.lookup(api_key) == alice for api_key in issued)  # each seen once: remembered without a hash
    newest = book.issue(alice, *proof("alice", book.challenge(alice)))
    assert book.lookup(issued[0]) is None and keys(tmp_path).lookup(issued[0]) is None  # revoked, also on disk
    assert all(book.lookup(api_key) == alice for api_key in [*issued[1:], newest])
    assert book.count(alice) == MAX_KEYS_PER_ACCOUNT
    bob = format_address(key("bob").address)
    assert book.lookup(book.issue(bob, *proof("bob", book.challenge(bob)))) == bob and book.count(bob) == 1


class GatewaysOnChain:
    def __init__(self, listed: list[tuple[str, str]]) -> None:
        self.listed = listed

    def query(self, path: str) -> list[dict[str, str]]:
        assert path == "/credit/gateways"
        return [{"gateway": gateway, "url": url} for gateway, url in self.listed]


def test_the_gateway_meant_is_the_one_the_chain_lists_at_the_url() -> None:
    other = format_address(key("other").address)
    chain = GatewaysOnChain([(GATEWAY, "http://a.example:8080/"), (other, "http://b.example")])
    assert gateway_at(chain, "http://a.example:8080") == GATEWAY  # type: ignore[arg-type]
    assert gateway_at(chain, "http://b.example/") == other  # type: ignore[arg-type]
    with pytest.raises(ChainError) as caught:
        gateway_at(chain, "http://c.example")  # type: ignore[arg-type]
    assert caught.value.kind.name == "unknown_gateway"
