"""credit: inference payments between consumers, gateways and miners, on terms fixed when a line opens and backed by
the miners' signed usage receipts (chain/receipts.py), so that no party has to take another's word for what is owed.

- A **gateway** registers its URL and its fee (basis points charged on top of what miners earn) with a bond held
  here, so miners and consumers can recognise it. A changed fee applies only to lines opened after the change.
- A **consumer** opens a credit line with a gateway on terms the line keeps for its life: the gateway's fee as of
  opening (refused with ``fee_above_limit`` when it is above the consumer's ``max_fee_bps``, so a fee raised in the
  same block cannot catch the consumer), a maximum price per 1k tokens, and optionally a cap on what the line may
  pay per period of ``cap_period`` blocks (periods count from the line's opening). Funds are held here. The line can
  be topped up (and its expiry pushed out), and reclaimed once its expiry plus ``settle_grace`` blocks has passed
  (the grace lets the gateway settle the last usage). A consumer can **close** a line early: after ``close_notice``
  blocks, time for pending settlement, it reclaims what is left. Each line gets an id, never reused.
- The gateway **settles** with entries ``[consumer, miner hotkey key, tokens, grains, requests, miner signature]``
  under a batch id that must exceed its last one. Each entry is the miner's signed **cumulative** receipt for one
  (line, miner): the chain keeps what it has paid on that pair and pays only the difference. The miner's coldkey
  (the hotkey's owner on chain) gets the difference and the gateway its fee on it at the line's ``fee_bps``
  (rounded down), both out of the line. A batch is all or nothing.
- A miner (anyone, in fact) can **claim** receipts the gateway acknowledged (signed with its account key) when the
  gateway does not settle them: the line pays as in a settlement; when the line cannot pay an entry in full (its
  balance or its cap for the period), it pays the miner what it has, up to the difference, the gateway gets no fee
  on that entry, and the gateway's **bond** pays the rest of the difference, down to zero (the bond is slashed by
  that much). What the bond lacks too is not paid: the paid record's grains advance by what was paid and its tokens
  and requests stay, so the same receipt can be claimed again (or settled) for the rest.

Each entry of a settlement or a claim is checked in this order, the cheap checks first and the signatures last
(all of the batch's cheap checks before any signature):
1. the line (consumer, gateway) exists (``no_line``), the entry has requests (``empty_entry``);
2. the miner's hotkey has an owner on chain (``unknown_miner``), and neither the hotkey nor its owner is the
   gateway (``self_dealing``: a gateway paying itself from consumers' lines);
3. the receipt is newer than what was paid on the (line, miner): more grains, as many tokens or more, more
   requests (``receipt_stale``: replayed or older);
4. its price is within the line's: ``grains × 1,000 ≤ tokens × max_price_per_1k + 999 × requests`` (each request
   rounds its cost up by less than a grain; ``above_max_price``);
5. for a settlement, the difference plus the fee fits the line's balance (``beyond_credit``) and what the cap
   leaves of the period (``beyond_cap``); for a claim, the line and the bond together pay something;
6. the miner's signature (``bad_receipt``), and for a claim the gateway's acknowledgement.

State:
- ``credit/params`` -> Params
- ``credit/gateway/<gateway 20B>`` -> {url, fee_bps, bond, last_batch}
- ``credit/line/<consumer 20B><gateway 20B>`` -> {id, balance, spent, opened, expires, fee_bps, max_price_per_1k,
  cap, cap_period, period_start, period_spent, closing_at} (``closing_at`` 0: not closing; ``cap`` 0: no cap)
- ``credit/next_line`` -> the last line id given (the first line is 1)
- ``credit/paid/<line id 8B big-endian><miner hotkey 20B>`` -> [tokens, grains, requests] paid so far, cumulative
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from gridmint.chain import bank, neurons
from gridmint.chain.crypto import address_of, format_address
from gridmint.chain.errors import INVALID_FIELD, register
from gridmint.chain.fields import (
    U16,
    U64,
    Address,
    Amount,
    AmountOrZero,
    PublicKey,
    address,
    amount,
    list_of,
    public_key,
    record,
    signature,
    text,
    u64,
)
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.module_genesis import ModuleGenesis
from gridmint.chain.params import params_reader
from gridmint.chain.query_args import expect_args, parse_address_arg, parse_id
from gridmint.chain.receipts import Receipt, gateway_acknowledged, miner_signed
from gridmint.chain.records import INT, MAP, STR, TUPLE, RecordKind
from gridmint.chain.state import Reader, State
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
FEE_ABOVE_LIMIT = register(NAME, 12, "fee_above_limit")
LINE_CLOSING = register(NAME, 13, "line_closing")
SELF_DEALING = register(NAME, 14, "self_dealing")
RECEIPT_STALE = register(NAME, 15, "receipt_stale")
ABOVE_MAX_PRICE = register(NAME, 16, "above_max_price")
BEYOND_CAP = register(NAME, 17, "beyond_cap")
BAD_RECEIPT = register(NAME, 18, "bad_receipt")
BAD_TERMS = register(NAME, 19, "bad_terms")

MAX_FEE_BPS = 10_000
MAX_ENTRIES = 256


@dataclass(frozen=True)
class Params:
    min_bond: int = 10 * GRAINS_PER_MINT
    settle_grace: int = 100  # blocks after a line's expiry during which only the gateway may touch it
    max_duration: int = 5_256_000  # blocks a line may run (about two months at 1 s blocks)
    # Blocks between a consumer's early close and its reclaim: time for the gateway's last settlement and for
    # miners to claim what it acknowledged and left unpaid (`miner run` claims every 120 s by default): 20 minutes
    # at 1 s blocks.
    close_notice: int = 1_200


BOUNDS = {"min_bond": (0, MAX_U64), "settle_grace": (0, 10_000_000), "max_duration": (1, 100_000_000),
          "close_notice": (1, 10_000_000)}

PARAMS_KEY = b"credit/params"
GATEWAY_PREFIX = b"credit/gateway/"
LINE_PREFIX = b"credit/line/"
NEXT_LINE_KEY = b"credit/next_line"
PAID_PREFIX = b"credit/paid/"


get_params = params_reader(PARAMS_KEY, Params)


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


def line_prefix(line_id: int) -> bytes:
    return PAID_PREFIX + line_id.to_bytes(8, "big")


def get_paid(state: Reader, line_id: int, miner: bytes) -> list[int]:
    """``[tokens, grains, requests]`` paid so far on the line to the miner's hotkey (zeros: nothing yet)."""
    return list(state.get_value(line_prefix(line_id) + miner, [0, 0, 0]))


def compute_fee(grains: int, fee_bps: int) -> int:
    return grains * fee_bps // MAX_FEE_BPS


def reclaimable_from(line: dict[str, Any], params: Params) -> int:
    """The first block at which the consumer may take back what is left: the expiry plus the settlement grace, or
    the end of the close notice if that comes first."""
    free_at = int(line["expires"]) + params.settle_grace
    return min(free_at, int(line["closing_at"])) if line["closing_at"] else free_at


def roll_period(line: dict[str, Any], height: int) -> None:
    """Start the cap's period that ``height`` falls in (periods of ``cap_period`` blocks from the opening)."""
    if line["cap"]:
        opened, length = int(line["opened"]), int(line["cap_period"])
        start = opened + (height - opened) // length * length
        if start != line["period_start"]:
            line["period_start"], line["period_spent"] = start, 0


def spendable(line: dict[str, Any], height: int) -> int:
    """What the line can still pay at ``height``: its balance, and no more than its cap leaves of the period."""
    current = dict(line)
    roll_period(current, height)
    room = int(current["balance"])
    if current["cap"]:
        room = min(room, int(current["cap"]) - int(current["period_spent"]))
    return max(room, 0)


def max_grains(tokens: int, requests: int, max_price_per_1k: int) -> int:
    """The most a receipt of ``tokens`` over ``requests`` may ask at ``max_price_per_1k``: each request's cost is
    rounded up to a whole grain (``(tokens × price + 999) // 1000``), so a receipt may exceed the exact price by
    less than one grain per request."""
    return (tokens * max_price_per_1k + 999 * requests) // 1000


# --- events ----------------------------------------------------------------------------------------------


@event("gateway_registered")
class GatewayRegistered(EventData):
    """A gateway registered, or changed its URL, fee or bond."""

    gateway: str
    url: str
    fee_bps: int


@event("credit_opened")
class CreditOpened(EventData):
    """A consumer opened a credit line with a gateway."""

    consumer: str
    gateway: str
    line: int
    amount: int
    expires: int
    fee_bps: int


@event("credit_topped_up")
class CreditToppedUp(EventData):
    """A consumer added funds (and maybe time) to a line."""

    consumer: str
    gateway: str
    amount: int
    expires: int


@event("credit_closing")
class CreditClosing(EventData):
    """A consumer gave notice to close a line early."""

    consumer: str
    gateway: str
    line: int
    reclaimable_from: int


@event("settled")
class Settled(EventData):
    """A gateway settled a batch of receipts."""

    gateway: str
    batch: int
    entries: int
    paid: int
    fee: int


@event("claimed")
class Claimed(EventData):
    """A miner claimed receipts the gateway acknowledged but did not settle."""

    gateway: str
    claimant: str
    entries: int
    paid: int
    fee: int
    slashed: int


@event("credit_reclaimed")
class CreditReclaimed(EventData):
    """A consumer took back what a closed or expired line had left."""

    consumer: str
    gateway: str
    line: int
    amount: int


# --- messages ----------------------------------------------------------------------------------------------

ENTRY_FIELDS = (("consumer", address), ("miner_key", public_key), ("tokens", u64), ("grains", amount),
                ("requests", u64), ("miner_signature", signature))
SettledEntries = Annotated[list[list[Any]], list_of(
    record(*ENTRY_FIELDS), MAX_ENTRIES, "[consumer, miner_key, tokens, grains, requests, miner_signature]")]
ClaimedEntries = Annotated[list[list[Any]], list_of(
    record(*ENTRY_FIELDS, ("gateway_signature", signature)), MAX_ENTRIES,
    "[consumer, miner_key, tokens, grains, requests, miner_signature, gateway_signature]")]


@message("credit/register_gateway")
class MsgRegisterGateway(Msg):
    url: Annotated[str, text(256)]
    fee_bps: U16
    bond: U64


@message("credit/open")
class MsgOpenCredit(Msg):
    gateway: Address
    amount: Amount
    duration: U64  # blocks until the line expires
    max_price_per_1k: U64  # grains per 1k tokens the line pays at most (at least 1)
    max_fee_bps: U16  # refuse to open if the gateway's fee is above this
    cap: AmountOrZero  # grains the line pays at most per period (0: no cap)
    cap_period: U64  # blocks per period (0 exactly when cap is 0)


@message("credit/top_up")
class MsgTopUpCredit(Msg):
    gateway: Address
    amount: Amount
    extend: U64  # blocks added to the expiry (0 keeps it)


@message("credit/close")
class MsgCloseCredit(Msg):
    """The consumer gives notice: the line can be reclaimed ``close_notice`` blocks from now."""

    gateway: Address


@message("credit/settle")
class MsgSettle(Msg):
    batch: U64
    entries: SettledEntries  # cumulative receipts, each signed by the miner's hotkey


@message("credit/claim")
class MsgClaim(Msg):
    """Receipts the gateway acknowledged, paid without it: from the line, then from the gateway's bond."""

    gateway: Address
    gateway_key: PublicKey  # the gateway's account public key (its address must be ``gateway``)
    entries: ClaimedEntries


@message("credit/reclaim")
class MsgReclaimCredit(Msg):
    gateway: Address


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
    ctx.emit(GatewayRegistered(gateway=format_address(ctx.signer), url=msg.url, fee_bps=msg.fee_bps))


def _check_duration(state: Reader, duration: int) -> None:
    longest = get_params(state).max_duration
    if not 1 <= duration <= longest:
        raise BAD_EXPIRY(f"a credit line runs 1 to {longest} blocks, got {duration}")


def process_open(ctx: Context, msg: MsgOpenCredit) -> dict[str, int]:
    gateway = get_gateway(ctx.state, msg.gateway)
    key = LINE_PREFIX + ctx.signer + msg.gateway
    if ctx.state.get(key) is not None:
        raise LINE_EXISTS(f"a credit line with {format_address(msg.gateway)} is already open; top it up instead")
    _check_duration(ctx.state, msg.duration)
    if msg.max_price_per_1k == 0:
        raise BAD_TERMS("max_price_per_1k: expected at least 1 grain per 1k tokens (a line that pays no price "
                        "can pay no miner)")
    if (msg.cap == 0) != (msg.cap_period == 0):
        raise BAD_TERMS(f"cap {msg.cap} and cap_period {msg.cap_period}: expected a cap of grains per cap_period "
                        "blocks, or both 0 for no cap")
    if gateway["fee_bps"] > msg.max_fee_bps:
        raise FEE_ABOVE_LIMIT(f"gateway {format_address(msg.gateway)} charges {gateway['fee_bps']} bps, above your "
                              f"limit of {msg.max_fee_bps} bps; raise max_fee_bps or choose another gateway")
    bank.hold(ctx.state, ctx.signer, NAME, msg.amount, f"a credit line of {format_mint(msg.amount)}")
    line_id = ctx.state.get_int(NEXT_LINE_KEY) + 1
    ctx.state.set_int(NEXT_LINE_KEY, line_id)
    height = ctx.block.height
    expires = height + msg.duration
    ctx.state.set_value(key, {
        "id": line_id, "balance": msg.amount, "spent": 0, "opened": height, "expires": expires,
        "fee_bps": gateway["fee_bps"], "max_price_per_1k": msg.max_price_per_1k, "cap": msg.cap,
        "cap_period": msg.cap_period, "period_start": height, "period_spent": 0, "closing_at": 0})
    ctx.emit(CreditOpened(consumer=format_address(ctx.signer), gateway=format_address(msg.gateway), line=line_id,
             amount=msg.amount, expires=expires, fee_bps=gateway["fee_bps"]))
    return {"line": line_id}


def _refuse_closing(line: dict[str, Any], what: str) -> None:
    if line["closing_at"]:
        raise LINE_CLOSING(f"the credit line is closing (reclaimable from block {line['closing_at']}): it takes no "
                           f"{what}; open a new line once it is reclaimed")


def process_top_up(ctx: Context, msg: MsgTopUpCredit) -> None:
    line = get_line(ctx.state, ctx.signer, msg.gateway)
    _refuse_closing(line, "top-up")
    expires = max(int(line["expires"]), ctx.block.height) + msg.extend
    _check_duration(ctx.state, max(1, expires - ctx.block.height))
    bank.hold(ctx.state, ctx.signer, NAME, msg.amount, f"a top-up of {format_mint(msg.amount)}")
    line.update(balance=int(line["balance"]) + msg.amount, expires=expires)
    ctx.state.set_value(LINE_PREFIX + ctx.signer + msg.gateway, line)
    ctx.emit(CreditToppedUp(consumer=format_address(ctx.signer), gateway=format_address(msg.gateway),
             amount=msg.amount, expires=expires))


def process_close(ctx: Context, msg: MsgCloseCredit) -> None:
    line = get_line(ctx.state, ctx.signer, msg.gateway)
    _refuse_closing(line, "second close")
    line["closing_at"] = ctx.block.height + get_params(ctx.state).close_notice
    ctx.state.set_value(LINE_PREFIX + ctx.signer + msg.gateway, line)
    ctx.emit(CreditClosing(consumer=format_address(ctx.signer), gateway=format_address(msg.gateway),
             line=line["id"], reclaimable_from=reclaimable_from(line, get_params(ctx.state))))


# --- settlement and claims ---------------------------------------------------------------------------------


@dataclass
class _Batch:
    """A settlement's or a claim's entries as checked so far: the lines and paid records as its earlier entries
    leave them (an entry may follow another on the same pair), and what it will pay. Written only once every entry
    has passed, in key order."""

    state: State
    chain_id: str
    height: int
    gateway: bytes
    bond: int  # what is left of the gateway's bond for a claim to take
    gateway_key: bytes = b""  # a claim's: the key the gateway's acknowledgements are checked against
    lines: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # by consumer
    paid: dict[bytes, list[int]] = field(default_factory=dict)  # by paid key
    owners: dict[bytes, bytes] = field(default_factory=dict)  # hotkey -> coldkey
    payouts: dict[bytes, int] = field(default_factory=dict)  # coldkey -> grains
    fees: int = 0
    total: int = 0
    slashed: int = 0
    signatures: list[tuple[int, Receipt, bytes, bytes, bytes | None]] = field(default_factory=list)

    def line(self, consumer: bytes) -> dict[str, Any]:
        found = self.lines.get(consumer)
        if found is None:
            found = self.lines[consumer] = get_line(self.state, consumer, self.gateway)
            roll_period(found, self.height)
        return found

    def owner(self, index: int, miner: bytes) -> bytes:
        found = self.owners.get(miner)
        if found is None:
            found = neurons.hotkey_owner(self.state, miner)
            if found is None:
                raise UNKNOWN_MINER(f"entry {index}: {format_address(miner)} is not a miner's hotkey registered on "
                                    "any subnet; expected the hotkey that served and signed the receipt")
            self.owners[miner] = found
        return found

    def paid_of(self, line_id: int, miner: bytes) -> tuple[bytes, list[int]]:
        key = line_prefix(line_id) + miner
        found = self.paid.get(key)
        if found is None:
            found = self.paid[key] = get_paid(self.state, line_id, miner)
        return key, found


@dataclass(frozen=True)
class _Checked:
    """One entry past the checks that need no signature."""

    receipt: Receipt
    line: dict[str, Any]
    paid_key: bytes
    paid: list[int]
    coldkey: bytes
    delta: int  # grains the receipt adds to what was paid
    fee: int  # the gateway's fee on the delta, at the line's fee


def _check_entry(batch: _Batch, index: int, entry: list[Any]) -> _Checked:
    consumer, miner_key, tokens, grains, requests, miner_signature = entry[:6]
    if requests == 0:
        raise EMPTY_ENTRY(f"entry {index}: a receipt of no request is owed nothing; expected requests ≥ 1")
    line = batch.line(consumer)
    miner = address_of(miner_key)
    receipt = Receipt(batch.chain_id, int(line["id"]), batch.gateway, consumer, miner, tokens, grains, requests)
    coldkey = batch.owner(index, miner)
    if batch.gateway in (miner, coldkey):
        raise SELF_DEALING(f"entry {index}: hotkey {format_address(miner)} is the gateway's or belongs to it; a "
                           "gateway is paid its fee, never as a miner on its own lines")
    paid_key, paid = batch.paid_of(receipt.line, miner)
    if not (grains > paid[1] and tokens >= paid[0] and requests > paid[2]):
        raise RECEIPT_STALE(f"entry {index}: the receipt (tokens {tokens}, grains {grains}, requests {requests}) is "
                            f"not newer than what line {receipt.line} has paid {format_address(miner)} (tokens "
                            f"{paid[0]}, grains {paid[1]}, requests {paid[2]}); a receipt is cumulative: expected "
                            "more grains and requests, and no fewer tokens")
    limit = max_grains(tokens, requests, int(line["max_price_per_1k"]))
    if grains > limit:
        raise ABOVE_MAX_PRICE(f"entry {index}: {grains} grains for {tokens} tokens over {requests} requests is above "
                              f"the line's maximum price of {line['max_price_per_1k']} grains per 1k tokens; "
                              f"expected at most {limit} grains")
    batch.signatures.append((index, receipt, miner_key, miner_signature, entry[6] if len(entry) > 6 else None))
    delta = grains - paid[1]
    return _Checked(receipt, line, paid_key, paid, coldkey, delta, compute_fee(delta, int(line["fee_bps"])))


def _pay_from_line(batch: _Batch, checked: _Checked, grains: int, fee: int) -> None:
    line = checked.line
    line["balance"] = int(line["balance"]) - grains - fee
    line["spent"] = int(line["spent"]) + grains + fee
    if line["cap"]:
        line["period_spent"] = int(line["period_spent"]) + grains + fee
    batch.fees += fee


def _pay_miner(batch: _Batch, checked: _Checked, grains: int) -> None:
    batch.payouts[checked.coldkey] = batch.payouts.get(checked.coldkey, 0) + grains
    batch.total += grains


def _settle_entry(batch: _Batch, index: int, checked: _Checked) -> None:
    line, due = checked.line, checked.delta + checked.fee
    consumer = format_address(checked.receipt.consumer)
    if due > int(line["balance"]):
        raise BEYOND_CREDIT(f"entry {index}: {format_mint(due)} (with the gateway's fee) is beyond {consumer}'s "
                            f"remaining credit {format_mint(int(line['balance']))}")
    if line["cap"] and int(line["period_spent"]) + due > int(line["cap"]):
        left = int(line["cap"]) - int(line["period_spent"])
        raise BEYOND_CAP(f"entry {index}: {format_mint(due)} (with the gateway's fee) is beyond what {consumer}'s "
                         f"cap of {format_mint(int(line['cap']))} per {line['cap_period']} blocks leaves in this "
                         f"period, {format_mint(left)}; the next period starts at block "
                         f"{int(line['period_start']) + int(line['cap_period'])}")
    _pay_from_line(batch, checked, checked.delta, checked.fee)
    _pay_miner(batch, checked, checked.delta)
    receipt = checked.receipt
    checked.paid[:] = [receipt.tokens, receipt.grains, receipt.requests]


def _claim_entry(batch: _Batch, index: int, checked: _Checked) -> None:
    room = spendable(checked.line, batch.height)
    if checked.delta + checked.fee <= room:
        _settle_entry(batch, index, checked)
        return
    from_line = min(checked.delta, room)
    from_bond = min(checked.delta - from_line, batch.bond)
    if from_line + from_bond == 0:
        raise BEYOND_CREDIT(f"entry {index}: neither the line (nothing it may spend now) nor the gateway's bond "
                            f"(nothing left) can pay any of the {format_mint(checked.delta)} owed; claim it again "
                            "once either holds funds")
    _pay_from_line(batch, checked, from_line, 0)
    batch.bond -= from_bond
    batch.slashed += from_bond
    _pay_miner(batch, checked, from_line + from_bond)
    receipt = checked.receipt
    if from_line + from_bond == checked.delta:
        checked.paid[:] = [receipt.tokens, receipt.grains, receipt.requests]
    else:  # paid in part: tokens and requests stay, so this very receipt remains claimable for the rest
        checked.paid[1] += from_line + from_bond


def _verify_signatures(batch: _Batch) -> None:
    for index, receipt, miner_key, miner_signature, gateway_signature in batch.signatures:
        if not miner_signed(receipt, miner_key, miner_signature):
            raise BAD_RECEIPT(f"entry {index}: the miner's signature does not match the receipt; expected hotkey "
                              f"{format_address(receipt.miner)}'s signature over (chain id, line {receipt.line}, "
                              "gateway, consumer, miner, tokens, grains, requests)")
        if gateway_signature is not None and not gateway_acknowledged(receipt, batch.gateway_key, gateway_signature):
            raise BAD_RECEIPT(f"entry {index}: the gateway's acknowledgement does not match the receipt; expected "
                              f"{format_address(receipt.gateway)}'s signature over the same fields")


def _write(ctx: Context, batch: _Batch) -> None:
    for consumer in sorted(batch.lines):
        ctx.state.set_value(LINE_PREFIX + consumer + batch.gateway, batch.lines[consumer])
    for key in sorted(batch.paid):
        ctx.state.set_value(key, batch.paid[key])
    for coldkey in sorted(batch.payouts):
        bank.release(ctx.state, NAME, coldkey, batch.payouts[coldkey])
    if batch.fees:
        bank.release(ctx.state, NAME, batch.gateway, batch.fees)


def _new_batch(ctx: Context, gateway: bytes, bond: int = 0, gateway_key: bytes = b"") -> _Batch:
    return _Batch(ctx.state, ctx.block.chain_id, ctx.block.height, gateway, bond, gateway_key)


def process_settle(ctx: Context, msg: MsgSettle) -> None:
    gateway = get_gateway(ctx.state, ctx.signer)
    if msg.batch <= int(gateway["last_batch"]):
        raise BATCH_REPLAYED(f"batch {msg.batch} is not after this gateway's last settled batch "
                             f"{gateway['last_batch']}; batch ids increase")
    batch = _new_batch(ctx, ctx.signer)
    for index, entry in enumerate(msg.entries):
        _settle_entry(batch, index, _check_entry(batch, index, entry))
    _verify_signatures(batch)
    _write(ctx, batch)
    gateway["last_batch"] = msg.batch
    ctx.state.set_value(GATEWAY_PREFIX + ctx.signer, gateway)
    ctx.emit(Settled(gateway=format_address(ctx.signer), batch=msg.batch, entries=len(msg.entries),
             paid=batch.total, fee=batch.fees))


def process_claim(ctx: Context, msg: MsgClaim) -> None:
    gateway = get_gateway(ctx.state, msg.gateway)
    if address_of(msg.gateway_key) != msg.gateway:
        raise BAD_RECEIPT(f"gateway_key is not the key of gateway {format_address(msg.gateway)}; expected the public "
                          "key of the gateway's account, whose acknowledgements the entries carry")
    batch = _new_batch(ctx, msg.gateway, int(gateway["bond"]), msg.gateway_key)
    for index, entry in enumerate(msg.entries):
        _claim_entry(batch, index, _check_entry(batch, index, entry))
    _verify_signatures(batch)
    _write(ctx, batch)
    if batch.slashed:
        gateway["bond"] = batch.bond
        ctx.state.set_value(GATEWAY_PREFIX + msg.gateway, gateway)
    ctx.emit(Claimed(gateway=format_address(msg.gateway), claimant=format_address(ctx.signer),
             entries=len(msg.entries), paid=batch.total, fee=batch.fees, slashed=batch.slashed))


def process_reclaim(ctx: Context, msg: MsgReclaimCredit) -> None:
    line = get_line(ctx.state, ctx.signer, msg.gateway)
    free_at = reclaimable_from(line, get_params(ctx.state))
    if ctx.block.height < free_at:
        raise NOT_EXPIRED(f"the credit line can be reclaimed from block {free_at} (its expiry {line['expires']} plus "
                          "the gateway's settlement grace, or the end of a close notice); it is block "
                          f"{ctx.block.height}")
    if line["balance"]:
        bank.release(ctx.state, NAME, ctx.signer, int(line["balance"]))
    for key, _ in list(ctx.state.scan(line_prefix(int(line["id"])))):
        ctx.state.delete(key)
    ctx.state.delete(LINE_PREFIX + ctx.signer + msg.gateway)
    ctx.emit(CreditReclaimed(consumer=format_address(ctx.signer), gateway=format_address(msg.gateway),
             line=line["id"], amount=line["balance"]))


# --- queries, genesis, invariants --------------------------------------------------------------------------


def query_gateways(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/credit/gateways")
    return [{**g, "gateway": format_address(owner)} for owner, g in state.scan_values(GATEWAY_PREFIX)]


def query_line(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/credit/line/<consumer>/<gateway>``: the line with its id and terms, and when it can be reclaimed."""
    consumer_text, gateway_text = expect_args(parts, 2, "/credit/line/<consumer>/<gateway>")
    consumer, gateway = parse_address_arg("consumer", consumer_text), parse_address_arg("gateway", gateway_text)
    line = get_line(state, consumer, gateway)
    return {**line, "consumer": parts[0], "gateway": parts[1],
            "reclaimable_from": reclaimable_from(line, get_params(state))}


def query_lines(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/credit/lines/<consumer>``: every line the consumer holds."""
    (arg,) = expect_args(parts, 1, "/credit/lines/<consumer>")
    consumer = parse_address_arg("consumer", arg)
    return [{**line, "consumer": parts[0], "gateway": format_address(gateway)}
            for gateway, line in state.scan_values(LINE_PREFIX + consumer)]


def query_paid(state: Reader, parts: list[str], data: bytes) -> Any:
    """``/credit/paid/<line id>``: what the line has paid each miner's hotkey, cumulative, by hotkey bytes."""
    (arg,) = expect_args(parts, 1, "/credit/paid/<line id>")
    line_id = parse_id("line id", arg)
    return [{"miner": format_address(miner), "tokens": paid[0], "grains": paid[1], "requests": paid[2]}
            for miner, paid in state.scan_values(line_prefix(line_id))]


RECORDS = (
    RecordKind(GATEWAY_PREFIX, 20, MAP(url=STR, fee_bps=INT, bond=INT, last_batch=INT)),
    RecordKind(LINE_PREFIX, 40, MAP(id=INT, balance=INT, spent=INT, opened=INT, expires=INT, fee_bps=INT,
                                    max_price_per_1k=INT, cap=INT, cap_period=INT, period_start=INT,
                                    period_spent=INT, closing_at=INT)),
    RecordKind(NEXT_LINE_KEY, 0, INT),
    RecordKind(PAID_PREFIX, 28, TUPLE(INT, INT, INT)),  # <line id 8B><miner hotkey 20B> -> [tokens, grains, requests]
)
GENESIS = ModuleGenesis("credit", Params, BOUNDS, PARAMS_KEY, RECORDS)


def invariant_held(state: Reader) -> str | None:
    bonds = sum(int(g["bond"]) for _, g in state.scan_values(GATEWAY_PREFIX))
    lines = sum(int(line["balance"]) for _, line in state.scan_values(LINE_PREFIX))
    held = bank.get_held(state, NAME)
    return None if bonds + lines == held else f"gateway bonds + credit lines {bonds + lines} != held by credit {held}"


def invariant_paid(state: Reader) -> str | None:
    """Every paid record belongs to a line that exists (a reclaim removes the line's records with it)."""
    ids = {int(line["id"]) for _, line in state.scan_values(LINE_PREFIX)}
    for key, _ in state.scan(PAID_PREFIX):
        line_id = int.from_bytes(key[len(PAID_PREFIX):len(PAID_PREFIX) + 8], "big")
        if line_id not in ids:
            return f"a paid record names line {line_id}, which does not exist"
    return None


MODULE = ModuleSpec(
    name=NAME,
    events=(GatewayRegistered, CreditOpened, CreditToppedUp, CreditClosing, Settled, Claimed, CreditReclaimed),
    handlers={MsgRegisterGateway: process_register_gateway, MsgOpenCredit: process_open,
              MsgTopUpCredit: process_top_up, MsgCloseCredit: process_close, MsgSettle: process_settle,
              MsgClaim: process_claim, MsgReclaimCredit: process_reclaim},
    queries={"gateways": query_gateways, "line": query_line, "lines": query_lines, "paid": query_paid,
             "params": GENESIS.query},
    validate_genesis=GENESIS.validate,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    invariants={"held": invariant_held, "paid": invariant_paid},
)
