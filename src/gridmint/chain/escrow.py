"""escrow: per-lease payment streams, settled exactly in the block where a lease's funds run out.

An account pays its provider ``rate`` grains per block from the tenant's deposit. Nothing is paid block by block:
an account is settled whenever it is touched (withdraw, top-up, close), which costs the same whatever the
number of leases. A lease that cannot be paid is found in the block where its funds run out through a queue
ordered by that block: ``escrow/due/<block 8B><account 8B>``. Each block reads only the entries that are due,
so the work per block follows what is due, not how many leases exist. Funds stay in the bank under ``escrow``:
Σ (balance + withdrawable) over accounts = what the bank holds for escrow.

State:
- ``escrow/params`` -> Params
- ``escrow/account/<id 8B>`` -> {tenant, provider, rate, start, settled, balance, withdrawable, open, reason}
- ``escrow/due/<exhaustion block 8B><id 8B>`` -> b"" (open accounts only)
- ``escrow/next_id`` -> int
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridmint.chain import bank
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import register
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.module_genesis import ModuleGenesis
from gridmint.chain.params import params_reader
from gridmint.chain.query_args import expect_args, parse_id
from gridmint.chain.records import ADDRESS, BOOL, INT, MAP, STR, RecordKind
from gridmint.chain.state import Reader, State
from gridmint.chain.units import MAX_U64, format_mint

NAME = "escrow"

NO_ACCOUNT = register(NAME, 1, "no_account")
ACCOUNT_CLOSED = register(NAME, 2, "account_closed")
NOTHING_TO_WITHDRAW = register(NAME, 3, "nothing_to_withdraw")


@dataclass(frozen=True)
class Params:
    # Accounts end_block closes at most per block: ~70 µs each on the reference machine, so ~35 ms at the default;
    # a block reserves them before any transaction (chain/fees.py ESCROW_CLOSURE). The upper bound (1,000: ~70 ms)
    # drains a burst of exhausted leases sooner and, with the other end-block queues, keeps a block with its
    # largest epoch under a second.
    closures_per_block: int = 500


BOUNDS = {"closures_per_block": (1, 1_000)}  # at least one, so that every exhausted account is closed in time

PARAMS_KEY = b"escrow/params"
ACCOUNT_PREFIX = b"escrow/account/"
DUE_PREFIX = b"escrow/due/"
NEXT_ID_KEY = b"escrow/next_id"

REASON_INSUFFICIENT_FUNDS = "insufficient_funds"


get_params = params_reader(PARAMS_KEY, Params)


# --- events ----------------------------------------------------------------------------------------------


@event("escrow_exhausted")
class EscrowExhausted(EventData):
    """A lease's escrow ran dry and was closed."""

    account: int
    paid: int
    refunded: int


# --- accounts ----------------------------------------------------------------------------------------------


def _key(account_id: int) -> bytes:
    return ACCOUNT_PREFIX + account_id.to_bytes(8, "big")


def _due_key(block: int, account_id: int) -> bytes:
    # A deposit may outlast 2^64 blocks (a balance of ~18 billion MINT at one grain a block): such an account
    # is queued at the last block a key can name, which no chain reaches.
    return DUE_PREFIX + min(block, MAX_U64).to_bytes(8, "big") + account_id.to_bytes(8, "big")


def exhaustion_block(account: dict[str, Any]) -> int:
    """The block in which the balance reaches zero (paid through that block)."""
    return int(account["settled"] + account["balance"] // account["rate"])


def get_account(state: Reader, account_id: int) -> dict[str, Any]:
    account = state.get_value(_key(account_id))
    if account is None:
        raise NO_ACCOUNT(f"escrow account {account_id} does not exist")
    return dict(account)


def _settle(account: dict[str, Any], height: int) -> None:
    """Book what the provider earned up to ``height`` (never past the exhaustion block)."""
    until = min(height, exhaustion_block(account))
    if until > account["settled"]:
        earned = (until - account["settled"]) * account["rate"]
        account["balance"] -= earned
        account["withdrawable"] += earned
        account["settled"] = until


def _put(state: State, account_id: int, account: dict[str, Any]) -> None:
    state.set_value(_key(account_id), account)


def open_account(state: State, source: str, tenant: bytes, provider: bytes, rate: int, deposit: int,
                 height: int) -> int:
    """Open a stream paid from ``deposit`` grains that module ``source`` holds for the tenant."""
    if rate <= 0:
        raise ValueError("an escrow rate is positive")
    account_id = state.get_int(NEXT_ID_KEY) + 1
    state.set_int(NEXT_ID_KEY, account_id)
    bank.move_held(state, source, NAME, deposit)
    account = {"tenant": tenant, "provider": provider, "rate": rate, "start": height, "settled": height,
               "balance": deposit, "withdrawable": 0, "open": True, "reason": ""}
    _put(state, account_id, account)
    state.set(_due_key(exhaustion_block(account), account_id), b"")
    return account_id


def withdraw(state: State, account_id: int, height: int) -> int:
    """Pay the provider what it has earned so far; refuses when there is nothing."""
    account = get_account(state, account_id)
    _settle(account, height)
    amount = int(account["withdrawable"])
    if amount == 0:
        raise NOTHING_TO_WITHDRAW(f"escrow account {account_id} has nothing earned to withdraw yet")
    account["withdrawable"] = 0
    bank.release(state, NAME, account["provider"], amount)
    _put(state, account_id, account)
    return amount


def top_up(state: State, account_id: int, payer: bytes, amount: int, height: int) -> None:
    account = get_account(state, account_id)
    if not account["open"]:
        raise ACCOUNT_CLOSED(f"escrow account {account_id} is closed ({account['reason']}); it cannot be topped up")
    _settle(account, height)
    state.delete(_due_key(exhaustion_block(account), account_id))
    bank.hold(state, payer, NAME, amount, f"a top-up of {format_mint(amount)}")
    account["balance"] += amount
    _put(state, account_id, account)
    state.set(_due_key(exhaustion_block(account), account_id), b"")


def close(state: State, account_id: int, height: int, reason: str) -> tuple[int, int]:
    """Settle, pay the provider everything earned, refund the rest to the tenant; returns (paid, refunded)."""
    account = get_account(state, account_id)
    if not account["open"]:
        raise ACCOUNT_CLOSED(f"escrow account {account_id} is already closed ({account['reason']})")
    state.delete(_due_key(exhaustion_block(account), account_id))
    _settle(account, height)
    paid, refunded = int(account["withdrawable"]), int(account["balance"])
    if paid:
        bank.release(state, NAME, account["provider"], paid)
    if refunded:
        bank.release(state, NAME, account["tenant"], refunded)
    account.update(withdrawable=0, balance=0, open=False, reason=reason, closed_at=min(height,
                                                                                      int(account["settled"])))
    _put(state, account_id, account)
    return paid, refunded


def _due_before(state: Reader, height: int) -> list[tuple[bytes, Any]]:
    """The accounts end_block of block ``height`` closes: due then or before, earliest first, the per-block bound."""
    return list(state.scan(DUE_PREFIX, below=DUE_PREFIX + (height + 1).to_bytes(8, "big"),
                           limit=get_params(state).closures_per_block))


def count_due(state: Reader, height: int) -> int:
    """How many accounts end_block of block ``height`` will close (the block reserves their work: chain/fees.py)."""
    return len(_due_before(state, height))


def end_block(ctx: Context) -> None:
    """Close the accounts whose funds ran out in this block or before, the earliest first and at most
    ``closures_per_block`` of them (only those are read): tenants choose when their deposits run out, so many can
    be made to run out in one block, and the rest wait for the next. A late closure pays exactly what an
    on-time one would: an account earns nothing past its exhaustion block."""
    height = ctx.block.height
    for key, _ in _due_before(ctx.state, height):
        account_id = int.from_bytes(key[-8:], "big")
        paid, refunded = close(ctx.state, account_id, height, REASON_INSUFFICIENT_FUNDS)
        ctx.emit(EscrowExhausted(account=account_id, paid=paid, refunded=refunded))


def query_account(state: Reader, parts: list[str], data: bytes) -> Any:
    (arg,) = expect_args(parts, 1, "/escrow/account/<id>")
    account = get_account(state, parse_id("escrow account id", arg))
    _settle(account, state.height)
    return {**account, "tenant": format_address(account["tenant"]), "provider": format_address(account["provider"]),
            "exhaustion_block": exhaustion_block(account) if account["open"] else None}


def invariant_held(state: Reader) -> str | None:
    total = sum(int(a["balance"]) + int(a["withdrawable"]) for _, a in state.scan_values(ACCOUNT_PREFIX))
    held = bank.get_held(state, NAME)
    return None if total == held else f"escrow accounts {total} != held by escrow {held}"


RECORDS = (
    RecordKind(ACCOUNT_PREFIX, 8, MAP(optional=("closed_at",), tenant=ADDRESS, provider=ADDRESS, rate=INT, start=INT,
                                      settled=INT, balance=INT, withdrawable=INT, open=BOOL, reason=STR,
                                      closed_at=INT)),
    RecordKind(DUE_PREFIX, 16, None),
    RecordKind(NEXT_ID_KEY, 0, INT),
)
GENESIS = ModuleGenesis(NAME, Params, BOUNDS, PARAMS_KEY, RECORDS)

MODULE = ModuleSpec(
    name=NAME,
    events=(EscrowExhausted,),
    end_block=end_block,
    queries={"account": query_account, "params": GENESIS.query},
    validate_genesis=GENESIS.validate,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    invariants={"held": invariant_held},
)
