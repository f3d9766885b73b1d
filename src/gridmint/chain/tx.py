"""Transactions: ``{chain_id, signer, nonce, fee, messages[], memo}``, signed with ed25519.

Wire form (canonical codec)::

    envelope = [body_bytes, signature]              signature = ed25519(signer, body_bytes)
    body     = [version, chain_id, signer, nonce, fee, [message, ...], memo]
    message  = [type, field_1, field_2, ...]        fields in the order the message type declares

The body's first element is the format version, so later versions can add fields. The transaction hash is
SHA-256 of the envelope bytes (what CometBFT indexes). ``decode_tx`` checks in the order that keeps work
small for an attacker: size, envelope shape, **signature**, then everything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Any, ClassVar, TypeVar, dataclass_transform, get_args, get_origin, get_type_hints

from gridmint.chain import codec
from gridmint.chain.crypto import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, PrivateKey, address_of, verify
from gridmint.chain.errors import (
    BAD_SIGNATURE,
    MALFORMED,
    MEMO_TOO_LONG,
    OVERSIZE,
    TOO_MANY_MESSAGES,
    UNKNOWN_MESSAGE,
    UNSUPPORTED_VERSION,
    ChainError,
)
from gridmint.chain.fields import FieldCheck, text, u64

TX_VERSION = 1
# Hard limits that hold before parameters can be read; genesis may set tighter ones (see app.TxParams).
ABSOLUTE_MAX_TX_BYTES = 65_536
MAX_MESSAGES = 16
MAX_MEMO_BYTES = 256
CHAIN_ID_CHECK = text(50)


class Msg:
    """Base of every message: a frozen dataclass declared with ``@message("module/name")``, each field with its
    codec (``amount: Amount``). ``TYPE`` (the wire name) and ``FIELDS`` (name and check of each field, in declared
    order: the wire order) are derived from that declaration."""

    TYPE: ClassVar[str]
    FIELDS: ClassVar[tuple[tuple[str, FieldCheck], ...]]

    def to_wire(self) -> list[Any]:
        return [self.TYPE, *(getattr(self, name) for name, _ in self.FIELDS)]


# The message types a chain reads, by wire name. The modules are the one registry: a type is known because a module
# of the app handles it (module.message_registry), so nothing decodes that no handler would run.
MessageTypes = Mapping[str, type[Msg]]
M = TypeVar("M", bound=Msg)


@dataclass_transform(frozen_default=True)
def message(wire_name: str) -> Callable[[type[M]], type[M]]:
    """Class decorator for a message type: makes it a frozen dataclass named ``wire_name`` on the wire, whose fields
    each carry their codec (``Annotated[int, u64]`` or an alias such as ``U64``), in wire order. A module makes it
    known by handling it."""

    def declare(cls: type[M]) -> type[M]:
        declared = dataclass(frozen=True)(cls)
        declared.TYPE = wire_name
        # Read once, here: the hints are evaluated from the module's names, and the wire order is declaration order.
        hints = get_type_hints(declared, include_extras=True)
        declared.FIELDS = tuple((field.name, _codec(declared, field.name, hints[field.name]))
                                for field in fields(declared))  # type: ignore[arg-type]
        return declared

    return declare


def _codec(cls: type, name: str, hint: Any) -> FieldCheck:
    """The one check a field's ``Annotated`` hint carries; a field without one could not be decoded."""
    metadata = get_args(hint)[1:] if get_origin(hint) is Annotated else ()
    if len(metadata) != 1 or not callable(metadata[0]):
        raise TypeError(f"{cls.__name__}.{name}: declare the field with its codec, as Annotated[type, check]")
    check: FieldCheck = metadata[0]
    return check


def decode_message(wire: Any, types: MessageTypes) -> Msg:
    if not isinstance(wire, list) or not wire or not isinstance(wire[0], str):
        raise MALFORMED("a message must be a list that starts with its type")
    cls = types.get(wire[0])
    if cls is None:
        raise UNKNOWN_MESSAGE(f"unknown message type '{wire[0][:64]}'; known types: {', '.join(sorted(types))}")
    if len(wire) != len(cls.FIELDS) + 1:
        raise MALFORMED(f"{cls.TYPE} takes {len(cls.FIELDS)} fields, got {len(wire) - 1}")
    values = {name: check(f"{cls.TYPE}.{name}", value)
              for (name, check), value in zip(cls.FIELDS, wire[1:], strict=True)}
    return cls(**values)


@dataclass(frozen=True)
class TxBody:
    chain_id: str
    signer: bytes  # ed25519 public key
    nonce: int
    fee: int
    messages: tuple[Msg, ...]
    memo: str = ""

    @property
    def signer_address(self) -> bytes:
        return address_of(self.signer)

    def encode(self) -> bytes:
        return codec.encode(
            [TX_VERSION, self.chain_id, self.signer, self.nonce, self.fee,
             [m.to_wire() for m in self.messages], self.memo]
        )


@dataclass(frozen=True)
class SignedTx:
    body: TxBody
    raw: bytes
    hash: bytes


def sign_tx(body: TxBody, key: PrivateKey) -> bytes:
    """Envelope bytes for ``body`` signed by ``key`` (whose public key must be the body's signer)."""
    if key.public_key != body.signer:
        raise ValueError("the signing key is not the transaction's signer")
    body_bytes = body.encode()
    return codec.encode([body_bytes, key.sign(body_bytes)])


def _open_envelope(raw: bytes) -> tuple[bytes, bytes, list[Any]]:
    """The body bytes, the signature and the decoded body of a transaction, as far as its signature needs them
    checked: a signature of the right length, a body of this version with a signer key of the right length."""
    envelope = codec.decode(raw)
    if (not isinstance(envelope, list) or len(envelope) != 2
            or not isinstance(envelope[0], bytes) or not isinstance(envelope[1], bytes)):
        raise MALFORMED("a transaction must be [body bytes, signature bytes]")
    body_bytes, signature = envelope
    body = codec.decode(body_bytes)
    if not isinstance(body, list) or not body or not isinstance(body[0], int) or isinstance(body[0], bool):
        raise MALFORMED("a transaction body must be a list that starts with its version")
    if body[0] != TX_VERSION:
        raise UNSUPPORTED_VERSION(f"transaction version {body[0]} is not supported; this chain reads {TX_VERSION}")
    if len(body) != 7:
        raise MALFORMED(f"a version {TX_VERSION} body has 7 fields, got {len(body)}")
    signer = body[2]
    if not isinstance(signer, bytes) or len(signer) != PUBLIC_KEY_BYTES:
        raise MALFORMED(f"signer must be a {PUBLIC_KEY_BYTES}-byte ed25519 public key")
    if len(signature) != SIGNATURE_BYTES:
        raise BAD_SIGNATURE("signature does not match the transaction body and signer; sign it again")
    return body_bytes, signature, body


def signatures_hold(raws: list[bytes]) -> list[bool]:
    """For each transaction, whether its envelope opens and its signature verifies: the costly part of
    ``decode_tx`` (an ed25519 verification, ~45 µs), which reads no state, so worker processes can do it for a
    batch (node/sigverify.py). False for anything that does not open; ``decode_tx`` then says what is wrong."""
    answers = []
    for raw in raws:
        try:
            body_bytes, signature, body = _open_envelope(raw)
        except ChainError:
            answers.append(False)
            continue
        answers.append(verify(body[2], body_bytes, signature))
    return answers


def tx_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def decode_tx(raw: bytes, max_bytes: int = ABSOLUTE_MAX_TX_BYTES, *, types: MessageTypes,
              signature_verified: bool = False) -> SignedTx:
    """Parse and authenticate a transaction whose messages are of ``types`` (the app's ``MESSAGE_TYPES``); raises
    a ChainError naming the first problem found. ``signature_verified``: ``signature_holds`` returned True for
    these very bytes (in a worker process: node/sigverify.py), so the verification is not done again."""
    if len(raw) > max_bytes:
        raise OVERSIZE(f"transaction is {len(raw)} bytes; the limit is {max_bytes}")
    body_bytes, signature, body = _open_envelope(raw)
    _, chain_id, signer, nonce, fee, wire_messages, memo = body
    if not signature_verified and not verify(signer, body_bytes, signature):
        raise BAD_SIGNATURE("signature does not match the transaction body and signer; sign it again")
    chain_id = CHAIN_ID_CHECK("chain_id", chain_id)
    nonce = u64("nonce", nonce)
    fee = u64("fee", fee)
    if not isinstance(wire_messages, list):
        raise MALFORMED("messages must be a list")
    if not 1 <= len(wire_messages) <= MAX_MESSAGES:
        raise TOO_MANY_MESSAGES(f"a transaction carries 1 to {MAX_MESSAGES} messages, got {len(wire_messages)}")
    if not isinstance(memo, str):
        raise MALFORMED("memo must be text")
    if len(memo.encode()) > MAX_MEMO_BYTES:
        raise MEMO_TOO_LONG(f"memo is {len(memo.encode())} bytes; the limit is {MAX_MEMO_BYTES}")
    messages = tuple(decode_message(m, types) for m in wire_messages)
    return SignedTx(TxBody(chain_id, signer, nonce, fee, messages, memo), raw, tx_hash(raw))
