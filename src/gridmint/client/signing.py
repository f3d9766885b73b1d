"""Signed requests and answers between network parties (validator→miner, gateway→miner, tenant→provider).

A request carries five headers::

    x-gm-caller     the caller's hotkey public key (64 hex)
    x-gm-callee     the callee's hotkey address (gm1...)
    x-gm-nonce      nanoseconds, increasing
    x-gm-body       SHA-256 of the body (64 hex)
    x-gm-signature  ed25519 over "gridmint/request/v1.{nonce}.{caller address}.{callee}.{body hash}" (128 hex)

An answer carries ``x-gm-signer`` (the callee's public key), ``x-gm-body`` and ``x-gm-signature`` over
"gridmint/answer/v1.{request nonce}.{signer address}.{caller address}.{answer hash}". The domain prefixes make a
request signature useless as an answer signature and the other way round.

``verify_request`` checks in the order that keeps an attacker's cost above ours: header shape, **signature**,
body hash, callee, then the nonce window. Permission (who may call) is the receiver's policy, checked after.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

from gridmint.chain.crypto import PrivateKey, address_of, format_address, verify
from gridmint.chain.errors import ChainError, ErrorKind, register

MISSING_SIGNATURE = register("auth", 1, "missing_signature")
BAD_SIGNATURE = register("auth", 2, "bad_signature")
BODY_MISMATCH = register("auth", 3, "body_mismatch")
WRONG_CALLEE = register("auth", 4, "wrong_callee")
REPLAYED_NONCE = register("auth", 5, "replayed_nonce")
STALE_NONCE = register("auth", 6, "stale_nonce")
NOT_PERMITTED = register("auth", 7, "not_permitted")
BAD_ANSWER = register("auth", 8, "bad_answer_signature")

CALLER, CALLEE, NONCE, BODY, SIGNATURE, SIGNER = (
    "x-gm-caller", "x-gm-callee", "x-gm-nonce", "x-gm-body", "x-gm-signature", "x-gm-signer")
HTTP_STATUS: dict[ErrorKind, int] = {
    MISSING_SIGNATURE: 401, BAD_SIGNATURE: 401, BODY_MISMATCH: 401, WRONG_CALLEE: 421, REPLAYED_NONCE: 401,
    STALE_NONCE: 401, NOT_PERMITTED: 403,
}


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _request_message(nonce: int, caller: str, callee: str, digest: str) -> bytes:
    return f"gridmint/request/v1.{nonce}.{caller}.{callee}.{digest}".encode()


def _answer_message(nonce: int, signer: str, caller: str, digest: str) -> bytes:
    return f"gridmint/answer/v1.{nonce}.{signer}.{caller}.{digest}".encode()


def sign_request(key: PrivateKey, callee: str, body: bytes, nonce: int | None = None) -> dict[str, str]:
    """The headers that authenticate ``body`` from ``key`` to the hotkey at address ``callee``."""
    nonce = time.time_ns() if nonce is None else nonce
    digest = body_hash(body)
    signature = key.sign(_request_message(nonce, format_address(key.address), callee, digest))
    return {CALLER: key.public_key.hex(), CALLEE: callee, NONCE: str(nonce), BODY: digest,
            SIGNATURE: signature.hex()}


def sign_answer(key: PrivateKey, request_nonce: int, caller: str, body: bytes) -> dict[str, str]:
    digest = body_hash(body)
    signature = key.sign(_answer_message(request_nonce, format_address(key.address), caller, digest))
    return {SIGNER: key.public_key.hex(), BODY: digest, SIGNATURE: signature.hex()}


@dataclass(frozen=True)
class Caller:
    address: str
    public_key: bytes
    nonce: int


class NonceWindow:
    """Nonces seen per caller within ``window_ns`` of now: a nonce older than the window, or seen already, is
    refused. Memory is bounded: at most ``max_callers`` callers (least recently seen forgotten first, and their
    whole window refused for replay by the age check alone) and ``max_per_caller`` nonces each."""

    def __init__(self, window_ns: int = 60 * 10**9, max_callers: int = 10_000, max_per_caller: int = 200_000):
        self.window_ns = window_ns
        self.max_callers = max_callers
        self.max_per_caller = max_per_caller
        self._seen: OrderedDict[str, OrderedDict[int, None]] = OrderedDict()
        # The oldest nonce still remembered per forgotten caller would be lost on eviction; to stay safe,
        # nonces at or below this floor are refused for every caller that was evicted.
        self._floor: dict[str, int] = {}

    def check(self, caller: str, nonce: int, now_ns: int | None = None) -> None:
        now_ns = time.time_ns() if now_ns is None else now_ns
        if nonce < now_ns - self.window_ns:
            raise STALE_NONCE(f"nonce {nonce} is older than {self.window_ns // 10**9} s; sign the request again")
        if nonce > now_ns + self.window_ns:
            raise STALE_NONCE(f"nonce {nonce} is more than {self.window_ns // 10**9} s ahead; check your clock")
        seen = self._seen.get(caller)
        if seen is None:
            if nonce <= self._floor.get(caller, -1):
                raise REPLAYED_NONCE(f"nonce {nonce} was already used")
            seen = self._seen[caller] = OrderedDict()
            if len(self._seen) > self.max_callers:
                evicted, nonces = self._seen.popitem(last=False)
                self._floor[evicted] = max(nonces, default=-1)
                if len(self._floor) > 4 * self.max_callers:  # floors older than the window are moot
                    self._floor = {c: n for c, n in self._floor.items() if n >= now_ns - self.window_ns}
        else:
            self._seen.move_to_end(caller)
        if nonce in seen:
            raise REPLAYED_NONCE(f"nonce {nonce} was already used")
        seen[nonce] = None
        horizon = now_ns - self.window_ns
        while seen and (next(iter(seen)) < horizon or len(seen) > self.max_per_caller):
            seen.popitem(last=False)


def verify_request(headers: dict[str, str], body: bytes, callee: str, nonces: NonceWindow) -> Caller:
    """Authenticate a request to ``callee`` (our hotkey address); raises an ``auth`` ChainError."""
    try:
        public_key = bytes.fromhex(headers[CALLER])
        nonce = int(headers[NONCE])
        claimed_callee = headers[CALLEE]
        digest = headers[BODY]
        signature = bytes.fromhex(headers[SIGNATURE])
    except (KeyError, ValueError):
        raise MISSING_SIGNATURE(f"a signed request needs the headers {CALLER}, {CALLEE}, {NONCE}, {BODY} and "
                                f"{SIGNATURE}") from None
    caller = format_address(address_of(public_key)) if len(public_key) == 32 else ""
    if not caller or len(claimed_callee) > 90 or len(digest) != 64 or \
            not verify(public_key, _request_message(nonce, caller, claimed_callee, digest), signature):
        raise BAD_SIGNATURE("the request signature does not verify; sign nonce.caller.callee.body_hash again")
    if body_hash(body) != digest:
        raise BODY_MISMATCH("the body does not match its signed SHA-256: it was changed on the way")
    if claimed_callee != callee:
        raise WRONG_CALLEE(f"this request was signed for {claimed_callee[:64]}, not for this server ({callee})")
    nonces.check(caller, nonce)
    return Caller(caller, public_key, nonce)


def verify_answer(headers: dict[str, str], body: bytes, expected_signer: str, request_nonce: int,
                  caller: str) -> None:
    """Check that ``expected_signer`` (an address) signed this answer to our request; raises ``auth/8``."""
    try:
        public_key = bytes.fromhex(headers[SIGNER])
        signature = bytes.fromhex(headers[SIGNATURE])
        digest = headers[BODY]
    except (KeyError, ValueError):
        raise BAD_ANSWER("the answer carries no signature") from None
    if len(public_key) != 32 or format_address(address_of(public_key)) != expected_signer:
        raise BAD_ANSWER(f"the answer was not signed by {expected_signer}")
    if body_hash(body) != digest or not verify(
            public_key, _answer_message(request_nonce, expected_signer, caller, digest), signature):
        raise BAD_ANSWER("the answer's signature does not match its body")


def http_status(error: ChainError) -> int:
    return HTTP_STATUS.get(error.kind, 400)
