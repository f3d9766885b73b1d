"""credit: inference payments between consumers, gateways and miners.

- A **gateway** registers its URL and its fee (basis points charged on top of what miners earn) with a bond held
  here, so miners and consumers can recognise it.
- A **consumer** opens a credit line with a gateway: funds held here until the line's expiry block. It can top the
  line up (and push the expiry out), and reclaim what is left once the expiry plus ``settle_grace`` blocks has
  passed (the grace lets the gateway settle the line's last usage).
- The gateway **settles** usage in batches of ``[consumer, miner hotkey, amount, requests]`` under a batch id that
  must exceed its last one (so no batch is paid twice). Each entry is checked against the line; the miner's
  coldkey (the hotkey's owner on chain) is paid ``amount`` and the gateway ``amount × fee_bps / 10,000`` (rounded
  down), both out of the line. A batch is all or nothing.

State:
- ``credit/params`` -> Params
- ``credit/gateway/<gateway 20B>`` -> {url, fee_bps, bond, last_batch}
- ``credit/line/<consumer 20B><gateway 20B>`` -> {balance, expires, opened, spent}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridmint.chain import bank, neurons
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import INVALID_FIELD, register
from gridmint.chain.fields import address, amount, list_of, record, text, u16, u64
from gridmint.chain.module import Context, ModuleSpec
from gridmint.chain.params import ParamsGenesis, read_params
from gridmint.chain.query_args import expect_args, parse_address_arg
from gridmint.chain.state import Reader
from gridmint.chain.tx import Msg, message
from gridmint.chain.units import GRAINS_PER_MINT, MAX_U64, format_mint

NAME = "credit"

NOT_GATEWAY = register(NAME, 1, "not_gateway")
BOND_TOO_LOW = register(NAME, 2, "bond_too_low")
FEE_TOO_HIGH = register(NAME, 3, "fee_too_high")
LINE_EXISTS = register(NAME, 4, "line_exists")
NO_LINE = register(NAME, 5, "no_line")
NOT_EXPIRED = register(NAME, 6, "not_expired")
BATCH_REPLAYED = register(NAME, 7, "batch_replayed")
BEYOND_CREDIT = register(NAME, 8, "beyond_credit")
UNKNOWN_MINER = register(NAME, 9, "unknown_miner")
EMPTY_ENTRY = register(NAME, 10, "empty_entry")
BAD_EXPIRY = register(NAME, 11, "bad_expiry")

MAX_FEE_BPS = 10_000
MAX_ENTRIES = 256


@dataclass(frozen=True)
class Params:
    min_bond: int = 10 * GRAINS_PER_MINT
    settle_grace: int = 100  # blocks after a line's expiry during which only the gateway may touch it
    max_duration: int = 5_256_000  # blocks a line may run (about two months at 1 s blocks)


BOUNDS = {"min_bond": (0, MAX_U64), "settle_grace": (0, 10_000_000), "max_duration": (1, 100_000_000)}

PARAMS_KEY = b"credit/params"
GATEWAY_PREFIX = b"credit/gateway/"
LINE_PREFIX = b"credit/line/"


def get_params(state: Reader) -> Params:
    return read_params(state, PARAMS_KEY, Params)


def get_gateway(state: Reader, gateway: bytes) -> dict[str, Any]:
    found = state.get_value(GATEWAY_PREFIX + gateway)
    if found is None:
        raise NOT_GATEWAY(f"{format_address(gateway)} is not a registered gateway")
    return dict(found)


def get_line(state: Reader, consumer: bytes, gateway: bytes) -> dict[str, Any]:
    found = state.get_value(LINE_PREFIX + consumer + gateway)
    if found is None:
        raise NO_LINE(f"{format_address(consumer)} has no credit line with gateway {format_address(gateway)}")
    return dict(found)


def compute_fee(grains: int, fee_bps: int) -> int:
    return grains * fee_bps // MAX_FEE_BPS


# --- messages ----------------------------------------------------------------------------------------------


@message
@dataclass(frozen=True)
class MsgRegisterGateway(Msg):
    TYPE = "credit/register_gateway"
    FIELDS = (("url", text(256)), ("fee_bps", u16), ("bond", u64))

    url: str
    fee_bps: int
    bond: int


@message
@dataclass(frozen=True)
class MsgOpenCredit(Msg):
    TYPE = "credit/open"
    FIELDS = (("gateway", address), ("amount", amount), ("duration", u64))

    gateway: bytes
    amount: int
    duration: int  # blocks until the line expires


@message
@dataclass(frozen=True)
class MsgTopUpCredit(Msg):
    TYPE = "credit/top_up"
    FIELDS = (("gateway", address), ("amount", amount), ("extend", u64))

    gateway: bytes
    amount: int
    extend: int  # blocks added to the expiry (0 keeps it)


@message
@dataclass(frozen=True)
class MsgSettle(Msg):
    TYPE = "credit/settle"
    FIELDS = (("batch", u64),
              ("entries", list_of(record(("consumer", address), ("miner", address), ("amount", amount),
                                         ("requests", u64)), MAX_ENTRIES, "[consumer, miner, amount, requests]")))

    batch: int
    entries: list[list[Any]]


@message
@dataclass(frozen=True)
class MsgReclaimCredit(Msg):
    TYPE = "credit/reclaim"
    FIELDS = (("gateway", address),)

    gateway: bytes


def process_register_gateway(ctx: Context, msg: MsgRegisterGateway) -> None:
    params = get_params(ctx.state)
    if msg.bond < params.min_bond:
        raise BOND_TOO_LOW(f"a gateway's bond is at least {format_mint(params.min_bond)}")
    if msg.fee_bps > MAX_FEE_BPS:
        raise FEE_TOO_HIGH(f"fee_bps is at most {MAX_FEE_BPS} (100%), got {msg.fee_bps}")
    if not msg.url.startswith(("http://", "https://")):
        raise INVALID_FIELD("url: expected the http(s):// address where consumers reach the gateway")
    key = GATEWAY_PREFIX + ctx.signer
    previous = ctx.state.get_value(key)
    held = int(previous["bond"]) if previous else 0
    if msg.bond > held:
        bank.hold(ctx.state, ctx.signer, NAME, msg.bond - held, "the gateway bond")
    elif msg.bond < held:
        bank.release(ctx.state, NAME, ctx.signer, held - msg.bond)
    ctx.state.set_value(key, {"url": msg.url, "fee_bps": msg.fee_bps, "bond": msg.bond,
                              "last_batch": int(previous["last_batch"]) if previous else 0})
    ctx.emit("gateway_registered", gateway=format_address(ctx.signer), url=msg.url, fee_bps=msg.fee_bps)


def _check_duration(state: Reader, duration: int) -> None:
    longest = get_params(state).max_duration
    if not 1 <= duration <= longest:
        raise BAD_EXPIRY(f"a credit line runs 1 to {longest} blocks, got {duration}")


def process_open(ctx: Context, msg: MsgOpenCredit) -> None:
    get_gateway(ctx.state, msg.gateway)
    key = LINE_PREFIX + ctx.signer + msg.gateway
    if ctx.state.get(key) is not None:
        raise LINE_EXISTS(f"a credit line with {format_address(msg.gateway)} is already open; top it up instead")
    _check_duration(ctx.state, msg.duration)
    bank.hold(ctx.state, ctx.signer, NAME, msg.amount, f"a credit line of {format_mint(msg.amount)}")
    expires = ctx.block.height + msg.duration
    ctx.state.set_value(key, {"balance": msg.amount, "expires": expires, "opened": ctx.block.height, "spent": 0})
    ctx.emit("credit_opened", consumer=format_address(ctx.signer), gateway=format_address(msg.gateway),
             amount=msg.amount, expires=expires)


def process_top_up(ctx: Context, msg: MsgTopUpCredit) -> None:
    line = get_line(ctx.state, ctx.signer, msg.gateway)
    expires = max(int(line["expires"]), ctx.block.height) + msg.extend
    _check_duration(ctx.state, max(1, expires - ctx.block.height))
    bank.hold(ctx.state, ctx.signer, NAME, msg.amount, f"a top-up of {format_mint(msg.amount)}")
    line.update(balance=int(line["balance"]) + msg.amount, expires=expires)
    ctx.state.set_value(LINE_PREFIX + ctx.signer + msg.gateway, line)
    ctx.emit("credit_topped_up", consumer=format_address(ctx.signer), gateway=format_address(msg.gateway),
             amount=msg.amount, expires=expires)


def process_settle(ctx: Context, msg: MsgSettle) -> None:
    gateway = get_gateway(ctx.state, ctx.signer)
    if msg.batch <= int(gateway["last_batch"]):
        raise BATCH_REPLAYED(f"batch {msg.batch} is not after this gateway's last settled batch "
                             f"{gateway['last_batch']}; batch ids increase")
    total = fees = 0
    lines: dict[bytes, dict[str, Any]] = {}
    for index, (consumer, miner, grains, requests) in enumerate(msg.entries):
        if requests == 0:
            raise EMPTY_ENTRY(f"entry {index}: a miner that served no request is owed nothing")
        coldkey = neurons.hotkey_owner(ctx.state, miner)
        if coldkey is None:
            raise UNKNOWN_MINER(f"entry {index}: {format_address(miner)} is not a miner registered on any subnet")
        key = LINE_PREFIX + consumer + ctx.signer
        line = lines.get(key) or get_line(ctx.state, consumer, ctx.signer)
        fee = compute_fee(grains, int(gateway["fee_bps"]))
        if grains + fee > line["balance"]:
            raise BEYOND_CREDIT(f"entry {index}: {format_mint(grains + fee)} (with the gateway's fee) is beyond "
                                f"{format_address(consumer)}'s remaining credit {format_mint(line['balance'])}")
        line.update(balance=int(line["balance"]) - grains - fee, spent=int(line["spent"]) + grains + fee)
        lines[key] = line
        bank.release(ctx.state, NAME, coldkey, grains)
        total, fees = total + grains, fees + fee
    for key in sorted(lines):
        ctx.state.set_value(key, lines[key])
    if fees:
        bank.release(ctx.state, NAME, ctx.signer, fees)
    gateway["last_batch"] = msg.batch
    ctx.state.set_value(GATEWAY_PREFIX + ctx.signer, gateway)
    ctx.emit("settled", gateway=format_address(ctx.signer), batch=msg.batch, entries=len(msg.entries),
             paid=total, fee=fees)


def process_reclaim(ctx: Context, msg: MsgReclaimCredit) -> None:
    line = get_line(ctx.state, ctx.signer, msg.gateway)
    free_at = int(line["expires"]) + get_params(ctx.state).settle_grace
    if ctx.block.height < free_at:
        raise NOT_EXPIRED(f"the credit line can be reclaimed from block {free_at} (expiry {line['expires']} plus "
                          f"the gateway's settlement grace); it is block {ctx.block.height}")
    if line["balance"]:
        bank.release(ctx.state, NAME, ctx.signer, int(line["balance"]))
    ctx.state.delete(LINE_PREFIX + ctx.signer + msg.gateway)
    ctx.emit("credit_reclaimed", consumer=format_address(ctx.signer), gateway=format_address(msg.gateway),
             amount=line["balance"])


# --- queries, genesis, invariants --------------------------------------------------------------------------


def query_gateways(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/credit/gateways")
    return [{**g, "gateway": format_address(owner)} for owner, g in state.scan_values(GATEWAY_PREFIX)]


def query_line(state: Reader, parts: list[str], data: bytes) -> Any:
    consumer_text, gateway_text = expect_args(parts, 2, "/credit/line/<consumer>/<gateway>")
    consumer, gateway = parse_address_arg("consumer", consumer_text), parse_address_arg("gateway", gateway_text)
    line = get_line(state, consumer, gateway)
    return {**line, "consumer": parts[0], "gateway": parts[1],
            "reclaimable_from": int(line["expires"]) + get_params(state).settle_grace}


def query_lines(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/credit/lines/<consumer>``: every line the consumer holds."""
    (arg,) = expect_args(parts, 1, "/credit/lines/<consumer>")
    consumer = parse_address_arg("consumer", arg)
    return [{**line, "consumer": parts[0], "gateway": format_address(gateway)}
            for gateway, line in state.scan_values(LINE_PREFIX + consumer)]


GENESIS = ParamsGenesis("credit", Params, BOUNDS, PARAMS_KEY)


def invariant_held(state: Reader) -> str | None:
    bonds = sum(int(g["bond"]) for _, g in state.scan_values(GATEWAY_PREFIX))
    lines = sum(int(line["balance"]) for _, line in state.scan_values(LINE_PREFIX))
    held = bank.get_held(state, NAME)
    return None if bonds + lines == held else f"gateway bonds + credit lines {bonds + lines} != held by credit {held}"


MODULE = ModuleSpec(
    name=NAME,
    handlers={MsgRegisterGateway: process_register_gateway, MsgOpenCredit: process_open,
              MsgTopUpCredit: process_top_up, MsgSettle: process_settle, MsgReclaimCredit: process_reclaim},
    queries={"gateways": query_gateways, "line": query_line, "lines": query_lines, "params": GENESIS.query},
    validate_genesis=GENESIS.validate,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    invariants={"held": invariant_held},
)

