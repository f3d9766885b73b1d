"""authority: the proof-of-authority set.

Genesis names the authorities. Any authority proposes adding one (or changing its power) or removing one; the
proposal counts its proposer's vote, other authorities vote for it, and it passes in the block where more than
two thirds of the *current* authorities have voted for it (by count, not power). A passed change is applied at
once and returned from ``finalize_block`` as a validator update, which is what CometBFT consumes (it takes
effect there two blocks later). Proposals that do not pass within ``voting_period`` blocks expire.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated, Any

from gridmint.chain.crypto import PUBLIC_KEY_BYTES, address_of, format_address
from gridmint.chain.errors import INVALID_GENESIS, register
from gridmint.chain.fields import U64, PublicKey, choice, text
from gridmint.chain.module import Context, EventData, ModuleSpec, ValidatorUpdate, event
from gridmint.chain.params import params_from_json, params_reader, params_to_json
from gridmint.chain.query_args import expect_args
from gridmint.chain.records import (
    ADDRESS,
    BYTES,
    INT,
    LIST,
    MAP,
    STR,
    RecordKind,
    Records,
    export_records,
    parse_records,
    write_records,
)
from gridmint.chain.state import Reader, State
from gridmint.chain.tx import Msg, message

NAME = "authority"
MAX_AUTHORITIES = 100
MAX_POWER = 1_000_000  # keeps total power far below CometBFT's MaxInt64/8

NOT_AUTHORITY = register(NAME, 1, "not_authority")
UNKNOWN_PROPOSAL = register(NAME, 2, "unknown_proposal")
ALREADY_VOTED = register(NAME, 3, "already_voted")
INVALID_CHANGE = register(NAME, 4, "invalid_change")

# --- parameters --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    voting_period: int = 1_000  # blocks a proposal stays open


BOUNDS = {"voting_period": (1, 10_000_000)}


# --- state -------------------------------------------------------------------------------------------------
# authority/params                       -> {"voting_period": int}
# authority/member/<address 20B>         -> {"pub_key": 32B, "power": int, "name": str}
# authority/proposal/<id u64 big-endian> -> {"action", "pub_key", "power", "name", "votes": [address...],
#                                            "proposer": address, "expires": height}
# authority/next_proposal_id             -> int

PARAMS_KEY = b"authority/params"
MEMBER_PREFIX = b"authority/member/"
PROPOSAL_PREFIX = b"authority/proposal/"
NEXT_ID_KEY = b"authority/next_proposal_id"


get_params = params_reader(PARAMS_KEY, Params)


def get_members(state: Reader) -> list[tuple[bytes, dict[str, Any]]]:
    return list(state.scan_values(MEMBER_PREFIX))


def is_member(state: Reader, account: bytes) -> bool:
    return state.get(MEMBER_PREFIX + account) is not None


def proposal_key(proposal_id: int) -> bytes:
    return PROPOSAL_PREFIX + proposal_id.to_bytes(8, "big")


# --- events ----------------------------------------------------------------------------------------------


@event("authority_proposal")
class AuthorityProposal(EventData):
    """An authority proposed adding or removing one (it may pass at once)."""

    id: int
    action: str
    target: str
    proposer: str


@event("authority_vote")
class AuthorityVote(EventData):
    """An authority voted for an open proposal."""

    id: int
    voter: str


@event("authority_change")
class AuthorityChange(EventData):
    """A proposal passed: the authority set changed."""

    id: int
    action: str
    target: str
    power: int


@event("authority_proposal_expired")
class AuthorityProposalExpired(EventData):
    """A proposal's voting period ended without a majority."""

    id: int


# --- messages ----------------------------------------------------------------------------------------------


@message("authority/propose")
class MsgPropose(Msg):
    """Propose to add an authority (or set its power) with ``add``, or to remove one with ``remove``."""

    action: Annotated[str, choice("add", "remove")]
    pub_key: PublicKey
    power: U64
    name: Annotated[str, text(64)]


@message("authority/vote")
class MsgVote(Msg):
    """Vote for an open proposal."""

    proposal_id: U64


def _require_member(ctx: Context) -> None:
    if not is_member(ctx.state, ctx.signer):
        raise NOT_AUTHORITY(f"{format_address(ctx.signer)} is not an authority; only authorities propose and vote")


def process_propose(ctx: Context, msg: MsgPropose) -> dict[str, int]:
    _require_member(ctx)
    target = address_of(msg.pub_key)
    members = get_members(ctx.state)
    if msg.action == "add":
        if not 1 <= msg.power <= MAX_POWER:
            raise INVALID_CHANGE(f"power must be from 1 to {MAX_POWER}, got {msg.power}")
        if not is_member(ctx.state, target) and len(members) >= MAX_AUTHORITIES:
            raise INVALID_CHANGE(f"the authority set is full ({MAX_AUTHORITIES} members)")
    else:
        if not is_member(ctx.state, target):
            raise INVALID_CHANGE(f"{format_address(target)} is not an authority, so it cannot be removed")
        if len(members) == 1:
            raise INVALID_CHANGE("the last authority cannot be removed: the chain would have no validators")
        if msg.power != 0:
            raise INVALID_CHANGE("a removal carries power 0")
    proposal_id = ctx.state.get_int(NEXT_ID_KEY) + 1
    ctx.state.set_int(NEXT_ID_KEY, proposal_id)
    proposal = {
        "action": msg.action, "pub_key": msg.pub_key, "power": msg.power, "name": msg.name,
        "proposer": ctx.signer, "votes": [ctx.signer],
        "expires": ctx.block.height + get_params(ctx.state).voting_period,
    }
    ctx.emit(AuthorityProposal(id=proposal_id, action=msg.action, target=format_address(target),
             proposer=format_address(ctx.signer)))
    _tally(ctx, proposal_id, proposal)
    return {"proposal": proposal_id}


def process_vote(ctx: Context, msg: MsgVote) -> None:
    _require_member(ctx)
    proposal = ctx.state.get_value(proposal_key(msg.proposal_id))
    if proposal is None:
        raise UNKNOWN_PROPOSAL(f"proposal {msg.proposal_id} is not open (it never existed, passed or expired)")
    if ctx.signer in proposal["votes"]:
        raise ALREADY_VOTED(f"{format_address(ctx.signer)} already voted for proposal {msg.proposal_id}")
    proposal["votes"] = sorted([*proposal["votes"], ctx.signer])
    ctx.emit(AuthorityVote(id=msg.proposal_id, voter=format_address(ctx.signer)))
    _tally(ctx, msg.proposal_id, proposal)


def is_passing(votes: int, authorities: int) -> bool:
    """More than two thirds of the authorities, in integers."""
    return 3 * votes > 2 * authorities


def _tally(ctx: Context, proposal_id: int, proposal: dict[str, Any]) -> None:
    """Apply the proposal if it has passed; otherwise store it with its votes."""
    members = {account for account, _ in get_members(ctx.state)}
    votes = sum(1 for voter in proposal["votes"] if voter in members)
    if not is_passing(votes, len(members)):
        ctx.state.set_value(proposal_key(proposal_id), proposal)
        return
    ctx.state.delete(proposal_key(proposal_id))
    target = address_of(proposal["pub_key"])
    if proposal["action"] == "add":
        ctx.state.set_value(MEMBER_PREFIX + target,
                            {"pub_key": proposal["pub_key"], "power": proposal["power"], "name": proposal["name"]})
    elif is_member(ctx.state, target) and len(members) > 1:
        ctx.state.delete(MEMBER_PREFIX + target)
    else:
        return  # removed meanwhile, or would empty the set: nothing left to do
    ctx.validator_updates.append(ValidatorUpdate(proposal["pub_key"], proposal["power"]))
    ctx.emit(AuthorityChange(id=proposal_id, action=proposal["action"], target=format_address(target),
             power=proposal["power"]))


# --- block hooks -------------------------------------------------------------------------------------------


def end_block(ctx: Context) -> None:
    """Expire proposals whose voting period has ended."""
    for key, proposal in list(ctx.state.scan_values(PROPOSAL_PREFIX)):
        if proposal["expires"] <= ctx.block.height:
            ctx.state.delete(PROPOSAL_PREFIX + key)
            ctx.emit(AuthorityProposalExpired(id=int.from_bytes(key, "big")))


# --- queries -----------------------------------------------------------------------------------------------


def _member_json(account: bytes, member: dict[str, Any]) -> dict[str, Any]:
    return {"address": format_address(account), "pub_key": base64.b64encode(member["pub_key"]).decode(),
            "power": member["power"], "name": member["name"]}


def query_members(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/authority/members")
    return [_member_json(account, member) for account, member in get_members(state)]


def query_proposals(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/authority/proposals")
    return [
        {"id": int.from_bytes(key, "big"), "action": p["action"], "target": format_address(address_of(p["pub_key"])),
         "power": p["power"], "name": p["name"], "votes": [format_address(v) for v in p["votes"]],
         "expires": p["expires"]}
        for key, p in state.scan_values(PROPOSAL_PREFIX)
    ]


def query_params(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/authority/params")
    return params_to_json(get_params(state))


# --- genesis -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Genesis:
    params: Params
    members: tuple[tuple[bytes, dict[str, Any]], ...]
    records: Records = ()  # open proposals and the next proposal id, in an exported genesis (chain/records.py)


# What the section's readable fields write; records hold the rest of the module's state.
WRITTEN_BY_FIELDS = (PARAMS_KEY, MEMBER_PREFIX)
RECORDS = (
    RecordKind(PROPOSAL_PREFIX, 8, MAP(action=STR, pub_key=BYTES(PUBLIC_KEY_BYTES), power=INT, name=STR,
                                       votes=LIST(ADDRESS), proposer=ADDRESS, expires=INT)),
    RecordKind(NEXT_ID_KEY, 0, INT),
)


def validate_genesis(raw: Any) -> Genesis:
    if not isinstance(raw, dict) or set(raw) - {"params", "members", "records"}:
        raise INVALID_GENESIS("authority: expected {\"params\": {...}, \"members\": [...], \"records\": {...}}")
    params = params_from_json(Params, "authority.params", raw.get("params", {}), BOUNDS)
    entries = raw.get("members", [])
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_AUTHORITIES:
        raise INVALID_GENESIS(f"authority.members: expected 1 to {MAX_AUTHORITIES} authorities")
    members: dict[bytes, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        where = f"authority.members[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"pub_key", "power", "name", "address"}:
            raise INVALID_GENESIS(f"{where}: expected {{\"pub_key\": <base64>, \"power\": <int>, \"name\": <text>}}")
        try:
            key = base64.b64decode(entry.get("pub_key", ""), validate=True)
        except (ValueError, TypeError):
            key = b""
        if len(key) != PUBLIC_KEY_BYTES:
            raise INVALID_GENESIS(f"{where}.pub_key: expected a base64 {PUBLIC_KEY_BYTES}-byte ed25519 key")
        power = entry.get("power", 10)
        if not isinstance(power, int) or isinstance(power, bool) or not 1 <= power <= MAX_POWER:
            raise INVALID_GENESIS(f"{where}.power: expected 1 to {MAX_POWER}")
        name = entry.get("name", "")
        if not isinstance(name, str) or len(name) > 64 or not name.isprintable():  # no surrogates nor controls
            raise INVALID_GENESIS(f"{where}.name: expected printable text of at most 64 characters")
        account = address_of(key)
        if "address" in entry and entry["address"] != format_address(account):
            raise INVALID_GENESIS(f"{where}.address does not match its pub_key (expected {format_address(account)})")
        if account in members:
            raise INVALID_GENESIS(f"{where}: authority {format_address(account)} is listed twice")
        members[account] = {"pub_key": key, "power": power, "name": name}
    records = parse_records("authority.records", NAME, raw.get("records", {}), WRITTEN_BY_FIELDS, RECORDS)
    return Genesis(params, tuple(sorted(members.items())), records)


def init_genesis(state: State, genesis: Genesis) -> None:
    state.set_value(PARAMS_KEY, params_to_json(genesis.params))
    for account, member in genesis.members:
        state.set_value(MEMBER_PREFIX + account, member)
    write_records(state, genesis.records)


def export_genesis(state: Reader) -> Any:
    section = {"params": params_to_json(get_params(state)),
               "members": [_member_json(account, member) for account, member in get_members(state)]}
    records = export_records(state, NAME, WRITTEN_BY_FIELDS)
    if records:
        section["records"] = records
    return section


def validator_set(state: Reader) -> list[ValidatorUpdate]:
    """The whole set, as ``init_chain`` returns it to CometBFT."""
    return [ValidatorUpdate(member["pub_key"], member["power"]) for _, member in get_members(state)]


# --- invariants --------------------------------------------------------------------------------------------


def invariant_nonempty(state: Reader) -> str | None:
    return None if get_members(state) else "the authority set is empty"


def invariant_member_keys(state: Reader) -> str | None:
    for account, member in get_members(state):
        if address_of(member["pub_key"]) != account:
            return f"authority {format_address(account)} is stored under an address that is not its key's"
    return None


MODULE = ModuleSpec(
    name=NAME,
    events=(AuthorityProposal, AuthorityVote, AuthorityChange, AuthorityProposalExpired),
    handlers={MsgPropose: process_propose, MsgVote: process_vote},
    end_block=end_block,
    queries={"members": query_members, "proposals": query_proposals, "params": query_params},
    validate_genesis=validate_genesis,
    init_genesis=init_genesis,
    export_genesis=export_genesis,
    invariants={"nonempty": invariant_nonempty, "member_keys": invariant_member_keys},
)
