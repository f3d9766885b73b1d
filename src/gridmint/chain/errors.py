"""Typed errors with a stable ``(module, code)``.

Every error the chain can return is registered once here or in its module with ``register``; the pair
``(module, code)`` never changes meaning, so clients can match on it. The message is a sentence a user can
act on: what was wrong and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class ChainError(Exception):
    """A refusal with a stable code. Raised by validation; a failed transaction keeps no state change."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def module(self) -> str:
        return self.kind.module

    @property
    def code(self) -> int:
        return self.kind.code

    def __str__(self) -> str:
        return f"{self.message} [{self.kind.module}/{self.kind.code} {self.kind.name}]"


@dataclass(frozen=True)
class ErrorKind:
    """One registered error: call it with a message to get the exception to raise."""

    module: str
    code: int
    name: str

    _registry: ClassVar[dict[tuple[str, int], ErrorKind]] = {}

    def __call__(self, message: str) -> ChainError:
        return ChainError(self, message)


def register(module: str, code: int, name: str) -> ErrorKind:
    """Register an error; a second registration of the same ``(module, code)`` is a programming error."""
    if code <= 0:
        raise ValueError("error codes start at 1; 0 means success")
    key = (module, code)
    if key in ErrorKind._registry:
        raise ValueError(f"error code {module}/{code} registered twice")
    kind = ErrorKind(module, code, name)
    ErrorKind._registry[key] = kind
    return kind


def lookup(module: str, code: int) -> ErrorKind | None:
    """The registered error for a result's ``(codespace, code)``, if this build knows it."""
    return ErrorKind._registry.get((module, code))


# Errors of the transaction envelope, shared by every module.
MALFORMED = register("tx", 1, "malformed")
OVERSIZE = register("tx", 2, "oversize")
BAD_SIGNATURE = register("tx", 3, "bad_signature")
WRONG_CHAIN_ID = register("tx", 4, "wrong_chain_id")
NONCE_REPLAYED = register("tx", 5, "nonce_replayed")
NONCE_FUTURE = register("tx", 6, "nonce_future")
UNKNOWN_MESSAGE = register("tx", 7, "unknown_message")
INVALID_FIELD = register("tx", 8, "invalid_field")
FEE_TOO_LOW = register("tx", 9, "fee_too_low")
UNSUPPORTED_VERSION = register("tx", 10, "unsupported_version")
TOO_MANY_MESSAGES = register("tx", 11, "too_many_messages")
MEMO_TOO_LONG = register("tx", 12, "memo_too_long")
INVALID_ADDRESS = register("tx", 13, "invalid_address")
OVERFLOW = register("tx", 14, "overflow")

# Amounts are the bank's, but every module that moves funds checks them the same way.
INSUFFICIENT_FUNDS = register("bank", 1, "insufficient_funds")
INVALID_AMOUNT = register("bank", 2, "invalid_amount")

# Errors of queries.
UNKNOWN_QUERY = register("query", 1, "unknown_path")
BAD_QUERY = register("query", 2, "bad_request")
HEIGHT_UNAVAILABLE = register("query", 3, "height_unavailable")

# Errors of genesis files.
INVALID_GENESIS = register("genesis", 1, "invalid_genesis")

# Errors of the block interface (a node feeding blocks out of order is a bug in the node, not in a tx).
BAD_BLOCK = register("app", 1, "bad_block")
# An exception that no check foresaw, in a query or a transaction: refused with this code (and logged), so that
# no input can stop a node. Seeing it means a bug, never a mistake of the sender.
INTERNAL_ERROR = register("app", 2, "internal_error")


def registered() -> list[ErrorKind]:
    """Every registered error, by module then code (for the reference docs)."""
    return sorted(ErrorKind._registry.values(), key=lambda kind: (kind.module, kind.code))
