"""API keys bound to on-chain accounts.

A consumer asks for a challenge for its address, signs ``gridmint/gateway-key/v1.{gateway}.{address}.{challenge}``
with the account's key, and gets an API key. Only the key's SHA-256 is stored (SQLite, beside the usage ledger),
so a copy of the database hands out no keys. Challenges live in memory, bounded in number and time. An account
holds at most ``MAX_KEYS_PER_ACCOUNT`` keys: a new one revokes the oldest, so keys cannot be multiplied to get
round a limit (the gateway's rate limit is per account anyway).

The message a consumer signs names the gateway, and the consumer's side (``request_api_key``) signs only for the
gateway it meant: the address the chain lists at the URL it contacts. A gateway that relays another gateway's
challenge (to get a key there for the victim's account) names the other gateway, and the consumer refuses
(``gateway_mismatch``) without signing anything.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections import OrderedDict

import httpx

from gridmint.chain.crypto import PrivateKey, address_of, format_address, parse_address, verify
from gridmint.chain.errors import ChainError, register
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.ledger import transaction

BAD_CHALLENGE = register("gateway", 1, "bad_challenge")
BAD_PROOF = register("gateway", 2, "bad_proof")
GATEWAY_UNREACHABLE = register("gateway", 4, "gateway_unreachable")
GATEWAY_MISMATCH = register("gateway", 5, "gateway_mismatch")
UNKNOWN_GATEWAY = register("gateway", 6, "unknown_gateway")

KEY_PREFIX = "gmk_"
MAX_KEYS_PER_ACCOUNT = 16


def key_message(gateway: str, address: str, challenge: str) -> bytes:
    return f"gridmint/gateway-key/v1.{gateway}.{address}.{challenge}".encode()


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, db: sqlite3.Connection, gateway: str, challenge_ttl_s: float = 300.0,
                 max_challenges: int = 10_000) -> None:
        self.db = db
        self.gateway = gateway
        self.challenge_ttl_s = challenge_ttl_s
        self.max_challenges = max_challenges
        self._challenges: OrderedDict[str, tuple[str, float]] = OrderedDict()
        db.execute("CREATE TABLE IF NOT EXISTS api_keys (digest TEXT PRIMARY KEY, address TEXT NOT NULL, "
                   "created REAL NOT NULL)")
        self._cache: dict[str, str] = dict(db.execute("SELECT digest, address FROM api_keys").fetchall())
        self._known: dict[str, str] = {}  # API keys seen valid -> address (spares a SHA-256 per request)
        self._known_digests: dict[str, str] = {}  # digest -> API key, for the keys in _known (to forget revoked ones)

    def challenge(self, address: str) -> str:
        try:
            parse_address(address)
        except ChainError:
            raise BAD_CHALLENGE(f"{address[:100]!r} is not an address (gm1...)") from None
        value = secrets.token_hex(16)
        self._challenges.pop(address, None)
        self._challenges[address] = (value, time.monotonic() + self.challenge_ttl_s)
        while len(self._challenges) > self.max_challenges:
            self._challenges.popitem(last=False)
        return value

    def issue(self, address: str, public_key_hex: str, signature_hex: str) -> str:
        """A new API key for ``address``, if it signed its pending challenge; the challenge is used up."""
        pending = self._challenges.pop(address, None)
        if pending is None or pending[1] < time.monotonic():
            raise BAD_CHALLENGE("no live challenge for this address; ask /v1/auth/challenge first (they last "
                                f"{self.challenge_ttl_s:g} s)")
        try:
            public_key, signature = bytes.fromhex(public_key_hex), bytes.fromhex(signature_hex)
        except (ValueError, TypeError):
            raise BAD_PROOF("public_key and signature are hex") from None
        if len(public_key) != 32 or format_address(address_of(public_key)) != address or \
                not verify(public_key, key_message(self.gateway, address, pending[0]), signature):
            raise BAD_PROOF(f"the signature does not prove ownership of {address}; sign "
                            "gridmint/gateway-key/v1.<gateway>.<address>.<challenge> with its key")
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(api_key)
        with transaction(self.db):
            self.db.execute("INSERT INTO api_keys VALUES (?, ?, ?)", (digest, address, time.time()))
            # rowid order is issue order: the newest MAX_KEYS_PER_ACCOUNT stay, older ones are revoked
            revoked = [row[0] for row in self.db.execute(
                "SELECT digest FROM api_keys WHERE address = ? ORDER BY rowid DESC LIMIT -1 OFFSET ?",
                (address, MAX_KEYS_PER_ACCOUNT))]
            self.db.executemany("DELETE FROM api_keys WHERE digest = ?", [(d,) for d in revoked])
        self._cache[digest] = address
        for old in revoked:
            self._cache.pop(old, None)
            known = self._known_digests.pop(old, None)
            if known is not None:
                self._known.pop(known, None)
        return api_key

    def lookup(self, api_key: str) -> str | None:
        """The account an API key belongs to, or None."""
        known = self._known.get(api_key)
        if known is not None:
            return known
        if not api_key.startswith(KEY_PREFIX) or len(api_key) > 128:
            return None
        digest = _digest(api_key)
        address = self._cache.get(digest)
        if address is not None and len(self._known) < 1_000_000:
            self._known[api_key] = address
            self._known_digests[digest] = api_key
        return address

    def count(self, address: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM api_keys WHERE address = ?", (address,)).fetchone()[0])


def gateway_at(client: ChainClient, gateway_url: str) -> str:
    """The address of the gateway the chain lists at ``gateway_url`` (trailing slashes aside): who a consumer
    contacting that URL means to deal with."""
    wanted = gateway_url.rstrip("/")
    found = [g["gateway"] for g in client.query("/credit/gateways") if str(g["url"]).rstrip("/") == wanted]
    if len(found) != 1:
        raise UNKNOWN_GATEWAY(f"{'no' if not found else len(found)} gateway(s) registered on chain at {wanted}; "
                              "expected exactly one (`gridmint gateway list` shows them)")
    return str(found[0])


def request_api_key(gateway_url: str, key: PrivateKey, expected_gateway: str, timeout_s: float = 15.0) -> str:
    """The consumer's side: prove ownership of ``key``'s account to the gateway at ``gateway_url`` and get an API
    key. Signs only for ``expected_gateway`` (the address resolved on chain from the URL, ``gateway_at``): a
    challenge naming any other gateway is refused with ``gateway_mismatch`` and nothing is signed."""
    address = format_address(key.address)
    base = gateway_url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout_s) as http:
            challenge = http.post(f"{base}/v1/auth/challenge", json={"address": address})
            challenge.raise_for_status()
            found = challenge.json()
            named, value = str(found["gateway"]), str(found["challenge"])
            if named != expected_gateway:
                raise GATEWAY_MISMATCH(f"the gateway at {base} answered a challenge for gateway {named[:100]}, not "
                                       f"for {expected_gateway}, which the chain lists at that URL; nothing was "
                                       "signed (a gateway relaying another's challenge would get a key there for "
                                       "your account)")
            signature = key.sign(key_message(expected_gateway, address, value))
            answer = http.post(f"{base}/v1/auth/key", json={"address": address, "public_key": key.public_key.hex(),
                                                              "signature": signature.hex()})
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise GATEWAY_UNREACHABLE(f"cannot get a key from the gateway at {base}: {error}") from None
    if answer.status_code != 200:
        raise BAD_PROOF(f"the gateway refused: {answer.text[:300]}")
    return str(answer.json()["api_key"])
