"""Hostile input for the App, as a stranger could send it: query paths of every real shape with mutated arguments,
data and heights, and signed transactions of every message type with mutated fields and envelopes (plus the
byte-level mutations of tests/support/fuzzing.py). A world with something in every module gives the real paths real
objects to find, so that mutations reach past the parsers into the handlers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gridmint.chain import codec
from gridmint.chain.app import MODULES
from gridmint.chain.authority import MsgPropose
from gridmint.chain.credit import MsgOpenCredit, MsgRegisterGateway
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.market import MsgAcceptBid, MsgBid, MsgCreateDeployment, MsgRegisterProvider
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.subnets import HYPERPARAM_NAMES, MsgCreateSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.tx import TX_VERSION, Msg
from tests.support.chain import CHAIN_ID, FEE, MINT, Driver, genesis, key, make_app
from tests.support.fuzzing import fuzz_cases

SIGNERS = ("owner", "val", "miner", "tenant", "prov", "gateway", "consumer", "authority-0", "authority-1")
HOTKEYS = ("val/hot", "miner/hot")
TEMPO = 5
SUBNETS_GENESIS = {"params": {"min_lock": 10 * MINT, "lock_decay_period": 100, "max_subnets": 8,
                              "default_tempo": TEMPO}}
MARKET_GENESIS = {"params": {"min_bond": MINT, "bid_deposit": MINT // 10, "max_bids": 5, "order_ttl": 50}}
CREDIT_GENESIS = {"params": {"min_bond": MINT, "settle_grace": 5, "max_duration": 1_000}}

# Every real query path, with a placeholder for each argument. test_hostile_input checks that each query the
# modules register has a shape here, so a new query is fuzzed as soon as it exists.
QUERY_SHAPES = (
    "/bank/balance/{address}", "/bank/supply", "/bank/params",
    "/authority/members", "/authority/proposals", "/authority/params",
    "/subnets/list", "/subnets/lock_cost", "/subnets/params", "/subnets/hotkey/{address}",
    "/subnets/{netuid}", "/subnets/{netuid}/info", "/subnets/{netuid}/metagraph",
    "/staking/stakes/{address}", "/staking/hotkey/{netuid}/{address}", "/staking/params",
    "/emission/info", "/emission/params",
    "/market/providers", "/market/orders", "/market/order/{id}", "/market/lease/{id}", "/market/params",
    "/escrow/account/{id}", "/escrow/params",
    "/credit/gateways", "/credit/line/{address}/{address}", "/credit/lines/{address}", "/credit/paid/{id}",
    "/credit/params",
    "/commitments/hotkey/{netuid}/{address}", "/commitments/epoch/{netuid}/{address}/{id}",
    "/commitments/block/{netuid}/{id}", "/commitments/subnet/{netuid}", "/commitments/params",
    "/tx/nonce/{address}", "/app/info",
)

ADDRESS = format_address(key("val").address)
HOSTILE_ARGS = (
    "", "0", "00", "01", "-0", "-1", "+1", " 1", "1 ", "1\n", "1.0", "1e3", "0x1", "0b1", "1_0", "١", "²", "𝟙", "一",
    "255", "256", "4096", "65535", "65536", "4294967296", str(2**63 - 1), str(2**63), str(2**64 - 1), str(2**64),
    str(10**30), "9" * 40, "9" * 300, "\x00", "\ud800", "\udfff", "é", "💥", "*", ".", "..", "%2F", "%00", "?x=1",
    "gm1", "GM1", ADDRESS.upper(), ADDRESS[:-1], ADDRESS + "q", ADDRESS[:-1] + ("q" if ADDRESS[-1] != "q" else "p"),
    "gm1" + "q" * 58, "x" * 91, "x" * 600, "null", "None", "true", "[]", "{}", "info", "metagraph", "list",
)
HOSTILE_DATA = (b"", b"", b"page=1", b"page=4294967297", b"page=-1", b"weights", b"bonds", b"weights,bonds", b",,",
                b"open", b"leased", b"closed", b"expired",
                b"nothing", b"\xff\xfe", b"weights," * 40, b"\x00" * 300)
ORDER_LIKE_SEGMENTS = ("bank", "authority", "subnets", "staking", "weights", "emission", "market", "escrow", "credit",
                       "commitments", "tx", "app", "balance", "nonce", "info", "params", "lease", "order", "account",
                       "line", "*")


def build_world(tmp_path: Path) -> Driver:
    """Two authorities (a proposal stays open), a subnet with a validator and a miner through one epoch, a
    provider with a lease (so an escrow account), a gateway with a credit line."""
    accounts = (*SIGNERS, *HOTKEYS)
    world = Driver(make_app(tmp_path, genesis(authorities=2, accounts=accounts, balance=100_000 * MINT,
                                              subnets=SUBNETS_GENESIS, market=MARKET_GENESIS, credit=CREDIT_GENESIS)))
    world.ok("owner", MsgCreateSubnet("text-generation", "hostile"))
    world.ok("owner", MsgSetHyperparam(1, "weights_rate_limit", 0))
    world.ok("val", MsgRegister(1, key("val/hot").address, 0))
    world.ok("miner", MsgRegister(1, key("miner/hot").address, 0))
    world.ok("val", MsgAddStake(1, key("val/hot").address, 100 * MINT))
    world.ok("prov", MsgRegisterProvider("https://provider.example", "A100", 2, 80, 16_000, 64_000, 500_000, "eu",
                                         ["datacenter"], 2 * MINT))
    world.ok("tenant", MsgCreateDeployment(2_000, 4_096, 1, ["A100"], 40, 2 * MINT, b"\x01" * 32, 10 * MINT))
    world.ok("prov", MsgBid(1, MINT))
    world.ok("tenant", MsgAcceptBid(1, key("prov").address))
    world.ok("gateway", MsgRegisterGateway("https://gateway.example", 250, 2 * MINT))
    world.ok("consumer", MsgOpenCredit(key("gateway").address, 10 * MINT, 100, 10**9, 250, 0, 0))
    world.ok("authority-0", MsgPropose("add", key("newcomer").public_key, 10, "newcomer"))  # 1 of 2: stays open
    world.advance(TEMPO + 1)
    return world


# --- queries -------------------------------------------------------------------------------------------------


def _random_text(rng: random.Random) -> str:
    length = rng.choice((1, 2, 5, 20, 100))
    return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x80, 0x3000), rng.randrange(0xD800, 0xE000),
                                   rng.randrange(0x10000, 0x110000), 0, 47))) for _ in range(length))


def _argument(rng: random.Random, kind: str) -> str:
    if rng.random() < 0.5:
        valid = {"address": (format_address(key(rng.choice(SIGNERS + HOTKEYS + ("nobody",))).address),),
                 "netuid": ("1", "0", "2", "65535"), "id": ("1", "0", "2", str(2**64 - 1))}[kind]
        return rng.choice(valid)
    if rng.random() < 0.85:
        return rng.choice(HOSTILE_ARGS)
    return _random_text(rng)


def _mutate_structure(rng: random.Random, path: str) -> str:
    segments = path.split("/")[1:]
    move = rng.randrange(12)
    if move == 0:
        return "/" + "//".join(segments) + rng.choice(("", "/", "//"))
    if move == 1 and len(segments) > 1:
        del segments[rng.randrange(len(segments))]
    elif move == 2:
        at = rng.randrange(len(segments))
        segments.insert(at, segments[at])
    elif move == 3:
        segments.insert(rng.randrange(len(segments) + 1), rng.choice(HOSTILE_ARGS + ORDER_LIKE_SEGMENTS))
    elif move == 4:
        segments[rng.randrange(len(segments))] = rng.choice(ORDER_LIKE_SEGMENTS)
    elif move == 5:
        return "/".join(segments)  # no leading slash
    elif move == 6:
        return path.upper()
    elif move == 7:
        return path + rng.choice(("?height=1", "#", "/..", "/./", "\x00", " "))
    elif move == 8:
        return _random_text(rng)
    elif move == 9:
        return path + "/" + "x" * rng.choice((400, 600, 5_000))  # past the path limit
    elif move == 10:
        return rng.choice(("", "/", "//", "///", "/" * 600))
    else:
        segments.append(rng.choice(HOSTILE_ARGS))
    return "/" + "/".join(segments)


def query_case(rng: random.Random, latest: int) -> tuple[str, bytes, int]:
    """A query path of a real shape with mutated arguments (and now and then a mutated structure), data and
    height."""
    path = rng.choice(QUERY_SHAPES)
    for kind in ("address", "netuid", "id"):
        while "{" + kind + "}" in path:
            path = path.replace("{" + kind + "}", _argument(rng, kind), 1)
    if rng.random() < 0.3:
        path = _mutate_structure(rng, path)
    data = rng.choice(HOSTILE_DATA) if rng.random() < 0.7 else rng.randbytes(rng.choice((1, 10, 255, 257, 2_000)))
    height = rng.choice((0, 0, 0, 0, 1, latest, latest - 1, latest + 1, -1, -(2**63), 2**63 - 1, 2**63, 2**64,
                         10**30))
    return path, data, height


# --- transactions --------------------------------------------------------------------------------------------


def message_classes() -> list[type[Msg]]:
    """Every message type a module handles, in a stable order."""
    return sorted({cls for module in MODULES for cls in module.handlers}, key=lambda cls: cls.TYPE)


def _value_pool() -> list[Any]:
    """Values of every shape a field may be offered (all of them encodable): each field's checks pick the ones
    they accept, the rest are offered as the wrong type now and then."""
    addresses = [key(name).address for name in (*SIGNERS, *HOTKEYS, "nobody")]
    consumer, miner_key, signature = key("consumer").address, key("miner/hot").public_key, b"\x05" * 64
    entries = [[consumer, miner_key, 1_000, MINT, 1, signature],
               [consumer, miner_key, 2**64 - 1, 2**96 - 1, 2**64 - 1, signature],
               [consumer, key("nobody").public_key, 1, 1, 0, signature],
               [consumer, miner_key, 1_000, MINT, 1, signature, signature],
               [consumer, key("gateway").public_key, 10, 10, 1, signature, signature]]
    return [
        0, 1, 2, 3, 7, 40, 100, 255, 256, 4_096, 4_097, 65_535, 65_536, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
        2**64, 2**80, 2**96 - 1, -1, -(2**63), FEE, MINT, 10 * MINT, 100_000 * MINT, True, False, None,
        *addresses, key("newcomer").public_key, key("val").public_key, b"", b"\x00" * 19, b"\x01" * 21,
        b"\x01" * 32, b"\xff" * 33, b"x" * 300,
        "", "add", "remove", "text-generation", "embedding", "https://x.example", "http://127.0.0.1:1", "ftp://x",
        "a" * 32, "a" * 33, "a" * 64, "a" * 65, "a" * 256, "a" * 257, "é" * 40, "💥" * 20, *HYPERPARAM_NAMES,
        [], [0], [0, 1], [1, 0], [0, 0], [65_535] * 3, [65_536], [0, 1, 2, 3], [1, 2**64], list(range(300)),
        list(range(1_000)), list(range(4_097)), ["text-generation"], ["a" * 64] * 16, ["x"] * 17, [b"x"], [[1]],
        entries[:1], entries, entries[3:], entries[:1] * 256, entries[:1] * 257, entries[3:4] * 256,
        [entries[0][:3]], signature, {"a": 1}, {},
    ]


POOL = _value_pool()
_ACCEPTED: dict[tuple[str, str], list[Any]] = {}


def _accepted(cls: type[Msg], name: str) -> list[Any]:
    """The pool's values that the field's own check accepts (found once, by asking the check)."""
    found = _ACCEPTED.get((cls.TYPE, name))
    if found is None:
        check = dict(cls.FIELDS)[name]
        found = []
        for value in POOL:
            try:
                check(name, value)
            except Exception:  # a refusal of any kind means "not of this field's shape"
                continue
            found.append(value)
        _ACCEPTED[(cls.TYPE, name)] = found
    return found


def _field_value(rng: random.Random, cls: type[Msg], name: str) -> Any:
    """A value of the field's own shape: one of the pool's that its check accepts, or a random number of the same
    magnitude; netuids are mostly the world's subnet, so that messages reach its neurons (its owner does not sign
    fuzzed transactions: a dissolution would end that after a few hundred cases)."""
    if name == "netuid" and rng.random() < 0.8:
        return rng.choice((1, 1, 1, 2, 3))  # the world's subnet, or one a fuzzed transaction may have created
    accepted = _accepted(cls, name)
    if not accepted:
        return rng.choice(POOL)
    value = rng.choice(accepted)
    if type(value) is int and rng.random() < 0.3:
        value = rng.randrange(0, max(2, min(value * 2, 2**96 - 1)))
    return value


def _message(rng: random.Random) -> list[Any]:
    """Every field of its shape most of the time (so the handler runs), one field of any shape otherwise."""
    cls = rng.choice(message_classes())
    wire = [cls.TYPE, *(_field_value(rng, cls, name) for name, _ in cls.FIELDS)]
    roll = rng.random()
    if roll < 0.25:
        wire[rng.randrange(1, len(wire))] = rng.choice(POOL) if roll < 0.22 else rng.randbytes(rng.choice((20, 32)))
    elif roll < 0.28:
        wire.pop()  # a field missing
    elif roll < 0.31:
        wire.append(rng.choice(POOL))  # a field too many
    elif roll < 0.33:
        wire[0] = rng.choice(("bank/mint", "", cls.TYPE.upper(), cls.TYPE + "x"))
    return wire


class TxMaker:
    """Signed transactions from funded keys with the right nonce most of the time, so that most reach the
    message handlers; envelopes, messages and bytes mutated the rest of the time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.keys: dict[str, PrivateKey] = {name: key(name) for name in SIGNERS if name != "owner"}
        self.next_nonce: dict[str, int] = {}
        self.byte_mutations = fuzz_cases(10**9, seed)

    def sync(self, nonce_of: Any) -> None:
        """Take each signer's next nonce from the chain (after a block)."""
        self.next_nonce = {name: nonce_of(signer.address) + 1 for name, signer in self.keys.items()}

    def accepted(self, name: str) -> None:
        self.next_nonce[name] += 1

    def make(self) -> tuple[str, bytes]:
        """(signer name, transaction bytes)."""
        rng = self.rng
        name = rng.choice(sorted(self.keys))
        if rng.random() < 0.05:
            return name, next(self.byte_mutations)
        signer = self.keys[name]
        nonce: Any = self.next_nonce[name]
        if rng.random() < 0.05:
            nonce = rng.choice((0, nonce - 1, nonce + 1, 2**64 - 1, 2**64, -1, "1", None))
        fee: Any = FEE if rng.random() < 0.95 else rng.choice((0, FEE - 1, 2**64 - 1, 2**64, 10**6 * MINT, -FEE, None))
        chain_id: Any = CHAIN_ID if rng.random() < 0.95 else rng.choice(("", "gridmint-other", "x" * 51, 7, b"id"))
        memo: Any = "" if rng.random() < 0.9 else rng.choice(("m" * 256, "m" * 257, "é" * 128, "é" * 129, 5, b""))
        count = rng.choice((1, 1, 1, 1, 1, 1, 1, 2, 3, 16, 17))
        messages: Any = [_message(rng) for _ in range(count)] if rng.random() < 0.98 else rng.choice(([], "x", None))
        version: Any = TX_VERSION if rng.random() < 0.98 else rng.choice((0, 2, -1, "1"))
        body_fields: list[Any] = [version, chain_id, signer.public_key, nonce, fee, messages, memo]
        if rng.random() < 0.01:
            body_fields.append(0)
        body = codec.encode(body_fields)
        signature = signer.sign(body)
        if rng.random() < 0.02:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        raw = codec.encode([body, signature])
        if rng.random() < 0.03:
            flipped = bytearray(raw)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            raw = bytes(flipped)
        return name, raw


def tx_cases(maker: TxMaker, count: int) -> Iterator[tuple[str, bytes]]:
    for _ in range(count):
        yield maker.make()
