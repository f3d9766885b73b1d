"""Fuzz past the signature check: signed, well-formed transactions from funded accounts, with the right nonce,
chain id and fee, whose message fields are mutated — for every message type the chain registers (read from the
registry, so a new message is fuzzed as soon as it exists).

Each field gets a value its kind accepts, chosen to probe the handlers (zero, one, 2**16, 2**63, max u64,
2**96 - 1, amounts beyond any balance, addresses and keys of other accounts, of no account, empty and full lists,
texts at their limit), and sometimes one it does not (negative, one past the limit, the wrong type, a list one item
too long), which decoding must refuse after the signature check. Every transaction must end as a success or a
refusal with a registered code — never ``app/internal_error``, never an exception — in check_tx and in its block;
every module's invariants hold after every block; two apps fed the same blocks agree on every app hash. Each type
must reach its handler (run, or refused by its own module) at least once.

Lean in CI (300 blocks); ``GRIDMINT_LONG=1`` runs 5,000 (``GRIDMINT_DEEP_FUZZ_BLOCKS``) from another seed
(``GRIDMINT_FUZZ_SEED``).
The tests of the test below inject bugs the fuzz must catch.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import (
    authority,
    bank,
    codec,
    commitments,
    credit,
    escrow,
    fields,
    market,
    staking,
    subnets,
    weights,
)
from gridmint.chain.app import MESSAGE_TYPES, App
from gridmint.chain.errors import ChainError
from gridmint.chain.receipts import Receipt, acknowledge_receipt, sign_receipt
from gridmint.chain.state import CommittedView
from gridmint.chain.store import Store
from gridmint.chain.subnets import HYPERPARAM_NAMES
from gridmint.chain.tx import Msg, decode_tx
from gridmint.chain.units import MAX_AMOUNT, MAX_U64
from tests.chain.chain_world import (
    ACCOUNTS,
    AUTHORITIES,
    BALANCE,
    GATEWAY,
    LINE_PRICE,
    Block,
    build_world,
    world_genesis,
)
from tests.support.chain import CHAIN_ID, FEE, MINT, key, required_fee, signed

BLOCKS, SEED = 300, 21
LONG_BLOCKS = int(os.environ.get("GRIDMINT_DEEP_FUZZ_BLOCKS", "5000"))

SIGNERS = (*ACCOUNTS, *AUTHORITIES)  # the authorities propose and vote; everyone else is refused there
ADDRESSES = [key(name).address for name in (*SIGNERS, "nobody")] + [bytes(20), b"\xff" * 20]
PUBLIC_KEYS = [key(name).public_key for name in (*SIGNERS, "nobody")] + [bytes(32), b"\xff" * 32]
WORDS = ["", "a", "https://gateway.example", "http://127.0.0.1:1", "ftp://x", "text-generation", "A100", "H100",
         "eu", "datacenter", "add", "remove", "Ω", *HYPERPARAM_NAMES]
U64S = [0, 1, 2, 3, 4, 5, 7, 10, 100, 1_000, 65_535, 65_536, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, MAX_U64,
        MINT, BALANCE]
U16S = [0, 1, 2, 3, 4, 5, 10, 255, 1_000, 10_000, 32_767, 65_535]
AMOUNTS = [1, 2, 999, 10**6, MINT, 10 * MINT, BALANCE // 2, BALANCE, BALANCE + 1, MAX_U64, 2**64, MAX_AMOUNT]
NOT_INTS: list[Any] = [True, None, "1", b"\x01", [], [1], {"a": 1}]


# Seeds: for each type, a transaction that makes sense in the world (its signer and a message), so that mutating one
# or two of its fields probes the handler's checks one at a time. A type without a seed is fuzzed from generated
# values alone (it still must reach its handler); a seed only makes the fuzz go deeper.
Seed = Callable[["Fuzz"], tuple[str, Msg]]
GW = key(GATEWAY).address


def _receipt_entry(fuzz: Fuzz, miner: str, acknowledged: bool) -> list[Any]:
    """The miner's next cumulative receipt on c1's line, signed by its hotkey (and acknowledged by the gateway)."""
    line = CommittedView(fuzz.net.app.store).get_value(credit.LINE_PREFIX + key("c1").address + GW)
    line_id = int(line["id"]) if line else 1
    tokens, requests = fuzz.served.get((line_id, miner), (0, 0))
    tokens, requests = tokens + fuzz.rng.randrange(1, 5_000), requests + 1
    fuzz.served[(line_id, miner)] = (tokens, requests)
    grains = credit.max_grains(tokens, requests, LINE_PRICE)
    receipt = Receipt(CHAIN_ID, line_id, GW, key("c1").address, key(f"{miner}/hot").address, tokens, grains,
                      requests)
    entry = [key("c1").address, key(f"{miner}/hot").public_key, tokens, grains, requests,
             sign_receipt(key(f"{miner}/hot"), receipt)]
    return [*entry, acknowledge_receipt(key(GATEWAY), receipt)] if acknowledged else entry


def _last(fuzz: Fuzz, counter: bytes) -> int:
    return max(1, CommittedView(fuzz.net.app.store).get_int(counter))


def _last_batch(fuzz: Fuzz) -> int:
    return int(credit.get_gateway(CommittedView(fuzz.net.app.store), GW)["last_batch"])


SEEDS: dict[str, Seed] = {
    "authority/propose": lambda f: ("authority-0",
                                    authority.MsgPropose("add", key("new-authority").public_key, 10, "new")),
    "authority/vote": lambda f: ("new-authority", authority.MsgVote(_last(f, authority.NEXT_ID_KEY))),
    "bank/send": lambda f: ("c1", bank.MsgSend(key("c2").address, MINT)),
    "credit/register_gateway": lambda f: (GATEWAY, credit.MsgRegisterGateway("https://gateway.example", 250, 5 * MINT)),
    "credit/open": lambda f: ("c2", credit.MsgOpenCredit(GW, 10 * MINT, 50, LINE_PRICE, 250, 0, 0)),
    "credit/top_up": lambda f: ("c1", credit.MsgTopUpCredit(GW, MINT, 5)),
    "credit/close": lambda f: ("c2", credit.MsgCloseCredit(GW)),
    "credit/reclaim": lambda f: ("c2", credit.MsgReclaimCredit(GW)),
    "credit/settle": lambda f: (GATEWAY, credit.MsgSettle(_last_batch(f) + 1, [_receipt_entry(f, "m1", False)])),
    "credit/claim": lambda f: ("m2", credit.MsgClaim(GW, key(GATEWAY).public_key, [_receipt_entry(f, "m2", True)])),
    "market/register_provider": lambda f: ("p1", market.MsgRegisterProvider(
        "https://provider.example", "A100", 4, 80, 32_000, 128_000, 1_000_000, "eu", ["datacenter"], 2 * MINT)),
    "market/create_deployment": lambda f: ("t1", market.MsgCreateDeployment(1_000, 2_048, 1, ["A100"], 40, MINT // 100,
                                                                     b"\x01" * 32, MINT)),
    "market/bid": lambda f: ("p1", market.MsgBid(_last(f, market.NEXT_ORDER_KEY), MINT // 200)),
    "market/accept_bid": lambda f: ("t1", market.MsgAcceptBid(_last(f, market.NEXT_ORDER_KEY), key("p1").address)),
    "market/close_deployment": lambda f: ("t1", market.MsgCloseDeployment(_last(f, market.NEXT_ORDER_KEY) - 1)),
    "market/close_lease": lambda f: ("p1", market.MsgCloseLease(_last(f, escrow.NEXT_ID_KEY), 2)),
    "market/withdraw": lambda f: ("p1", market.MsgWithdraw(_last(f, escrow.NEXT_ID_KEY))),
    "market/top_up": lambda f: ("t1", market.MsgTopUp(_last(f, escrow.NEXT_ID_KEY), MINT // 10)),
    "staking/add": lambda f: ("d1", staking.MsgAddStake(1, key("v1/hot").address, MINT)),
    "staking/remove": lambda f: ("d1", staking.MsgRemoveStake(1, key("v1/hot").address, MINT // 2)),
    "staking/set_take": lambda f: ("v1", staking.MsgSetTake(key("v1/hot").address, 1_000)),
    "subnets/create": lambda f: ("owner", subnets.MsgCreateSubnet("text-generation", "fuzzed")),
    "subnets/set_param": lambda f: ("owner", subnets.MsgSetHyperparam(1, "kappa", 30_000)),
    "subnets/dissolve": lambda f: ("owner", subnets.MsgDissolveSubnet(2)),
    "subnets/register": lambda f: ("m3", subnets.MsgRegister(1, key("m3/hot").address, 0)),
    "subnets/announce": lambda f: ("m1/hot",
                                   subnets.MsgAnnounceEndpoint(1, "https://miner.example", ["model"], 1_000, 1)),
    "weights/set": lambda f: ("v1/hot", weights.MsgSetWeights(1, [0, 1, 2, 3], [10, 20, 30, 40])),
    "weights/commit": lambda f: ("v2/hot", weights.MsgCommitWeights(1, bytes(32))),
    "weights/reveal": lambda f: ("v2/hot", weights.MsgRevealWeights(1, [0], [1], bytes(32))),
    "commitments/commit": lambda f: ("v1/hot", commitments.MsgCommit(1, bytes(32), b"root")),
}


class Mutator:
    """Values for a message field, by the field's kind (fields.py): ``good`` ones its check accepts, ``bad`` ones
    it refuses. A kind this does not know fails loudly, so a new kind is taught here rather than fuzzed blindly."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def good(self, check: Callable[[str, Any], Any]) -> Any:
        rng = self.rng
        simple: dict[Any, Callable[[], Any]] = {
            fields.address: lambda: rng.choice((*ADDRESSES, rng.randbytes(20))),
            fields.public_key: lambda: rng.choice((*PUBLIC_KEYS, rng.randbytes(32))),
            fields.signature: lambda: rng.choice((bytes(64), rng.randbytes(64), key("m1/hot").sign(b"anything"))),
            fields.bytes32: lambda: rng.choice((bytes(32), rng.randbytes(32))),
            fields.u64: lambda: rng.choice((*U64S, rng.randrange(0, 50), rng.randrange(0, MAX_U64 + 1))),
            fields.u16: lambda: rng.choice((*U16S, rng.randrange(0, 8), rng.randrange(0, 65_536))),
            fields.amount: lambda: rng.choice((*AMOUNTS, rng.randrange(1, 100 * MINT))),
            fields.amount_or_zero: lambda: rng.choice((0, *AMOUNTS)),
        }
        if check in simple:
            return simple[check]()
        closure = self._closure(check)
        if "options" in closure:  # choice
            return rng.choice(closure["options"])
        if "max_bytes" in closure:  # text
            limit = closure["max_bytes"]
            words = [word for word in WORDS if len(word.encode()) <= limit]
            return rng.choice((*words, "x" * limit, "é" * (limit // 2)))
        if "max_length" in closure:  # short_bytes
            limit = closure["max_length"]
            return rng.choice((b"", rng.randbytes(rng.randrange(0, limit + 1)), bytes(limit)))
        if "max_items" in closure:  # list_of
            limit = closure["max_items"]
            size = rng.choice((0, 1, 1, 2, 3, min(limit, rng.randrange(1, 9)), limit))
            return [self.good(closure["item_check"]) for _ in range(size)]
        if "parts" in closure:  # record
            return [self.good(part) for _, part in closure["parts"]]
        raise AssertionError(f"the deep fuzz does not know the field kind {fields.describe(check)}: teach Mutator")

    def bad(self, check: Callable[[str, Any], Any]) -> Any:
        rng = self.rng
        if check in (fields.address, fields.public_key, fields.signature, fields.bytes32):
            return rng.choice((b"", bytes(19), bytes(21), bytes(31), bytes(33), bytes(63), "gm1", 7, None))
        out_of_range = {fields.u64: (-1, -(2**63), 2**64, 2**96 - 1), fields.u16: (-1, 65_536, MAX_U64, 2**96 - 1),
                        fields.amount: (0, -1, -(2**63)), fields.amount_or_zero: (-1, -(2**63))}  # 2**96: no codec
        if check in out_of_range:
            return rng.choice((*out_of_range[check], *NOT_INTS))
        closure = self._closure(check)
        if "options" in closure:
            return rng.choice(("", "other", 1, None))
        if "max_bytes" in closure:
            limit = closure["max_bytes"]
            return rng.choice(("x" * (limit + 1), "é" * limit, 5, b"text", None))
        if "max_length" in closure:
            return rng.choice((bytes(closure["max_length"] + 1), "text", 5, None))
        if "max_items" in closure:
            good = [self.good(closure["item_check"]) for _ in range(rng.randrange(0, 3))]
            return rng.choice(([self.good(closure["item_check"])] * (closure["max_items"] + 1),
                               [*good, self.bad(closure["item_check"])], "list", 3, {"a": 1}))
        if "parts" in closure:
            parts = [self.good(part) for _, part in closure["parts"]]
            if rng.random() < 0.5:
                return parts[:-1]
            position = rng.randrange(len(parts))
            parts[position] = self.bad(closure["parts"][position][1])
            return parts
        raise AssertionError(f"the deep fuzz does not know the field kind {fields.describe(check)}: teach Mutator")

    @staticmethod
    def _closure(check: Callable[[str, Any], Any]) -> dict[str, Any]:
        names = check.__code__.co_freevars
        return {name: cell.cell_contents for name, cell in zip(names, check.__closure__ or (), strict=True)}


class Unchecked(Msg):
    """A message whose fields are sent as they are, so that a value its kind refuses reaches the wire."""

    def __init__(self, message_type: str, values: list[Any]) -> None:
        self.TYPE = message_type  # type: ignore[misc]
        self.values = values

    def to_wire(self) -> list[Any]:
        return [self.TYPE, *self.values]


def fuzzed_message(mutator: Mutator, message_type: str, seed: Msg | None) -> Msg:
    """The seed with a field or none replaced by a value its kind accepts (0.6 on average) and, one time in five,
    one field by a value it refuses; without a seed, every field generated."""
    cls = MESSAGE_TYPES[message_type]
    rng = mutator.rng
    rate = 0.6 / len(cls.FIELDS)
    values = [mutator.good(check) if seed is None or rng.random() < rate else getattr(seed, name)
              for name, check in cls.FIELDS]
    if rng.random() < 0.2:
        position = rng.randrange(len(cls.FIELDS))
        values[position] = mutator.bad(cls.FIELDS[position][1])
        return Unchecked(message_type, values)
    return cls(**{name: value for (name, _), value in zip(cls.FIELDS, values, strict=True)})


class Fuzz:
    """Two apps on the same world; ``block`` signs fuzzed transactions, runs them on the first (checked after every
    block: chain_world.CheckedDriver) and the same block on the second, which must agree."""

    def __init__(self, folder: Path, seed: int) -> None:
        (folder / "a").mkdir()
        self.net = build_world(folder / "a")
        self.twin = App(Store(folder / "twin.sqlite"))
        self.twin.init_chain(world_genesis())
        for block in self.net.blocks:
            self.feed_twin(block)
        self.rng = random.Random(seed)
        self.mutator = Mutator(self.rng)
        self.types = sorted(MESSAGE_TYPES)
        self.turn = 0
        self.served: dict[tuple[int, str], tuple[int, int]] = {}  # (line, miner) -> receipts' tokens, requests
        self.reached: Counter[str] = Counter()  # message type -> transactions whose handler ran
        self.succeeded: Counter[str] = Counter()  # message type -> transactions that succeeded

    def feed_twin(self, block: Block) -> None:
        result = self.twin.finalize_block(list(block.txs), block.height, block.time_ns, key("authority-0").address)
        self.twin.commit()
        assert result.app_hash == block.app_hash, f"two apps disagree at height {block.height}"

    def next_type(self) -> str:
        """Every registered type once per round, in an order shuffled each round: each gets its share whatever
        the seed, and seeds meet in every order (an order bid on before or after it is closed)."""
        if self.turn % len(self.types) == 0:
            self.rng.shuffle(self.types)
        self.turn += 1
        return self.types[self.turn % len(self.types)]

    def transaction(self, nonces: dict[str, int]) -> tuple[bytes, list[str]]:
        messages = []
        signer = self.rng.choice(SIGNERS)
        for position in range(self.rng.choice((1, 1, 1, 2, 3))):
            message_type = self.next_type()
            seed = SEEDS.get(message_type)
            seeded = seed(self) if seed is not None else None
            if seeded is not None and position == 0 and self.rng.random() < 0.8:
                signer = seeded[0]  # the seed's signer mostly, anyone sometimes
            messages.append(fuzzed_message(self.mutator, message_type, None if seeded is None else seeded[1]))
        if signer not in nonces:
            nonces[signer] = CommittedView(self.net.app.store).get_int(b"tx/nonce/" + key(signer).address)
        # Priced on the well-formed messages (one its kind refuses is refused before the fee is looked at).
        fee = max(FEE, required_fee(self.net.app, *(m for m in messages if not isinstance(m, Unchecked))))
        try:
            raw = signed(key(signer), nonces[signer] + 1, *messages, fee=fee)
        except ValueError:  # a value the codec cannot write at all (no transaction can carry it)
            return b"", []
        try:
            decode_tx(raw, types=MESSAGE_TYPES)
            nonces[signer] += 1  # its envelope will use the nonce (unless the fee is unaffordable: resynced below)
        except ChainError:
            pass  # refused while decoding, after the signature check: the nonce stays unused
        return raw, [m.TYPE for m in messages]

    def block(self) -> None:
        nonces: dict[str, int] = {}
        batch = [self.transaction(nonces) for _ in range(self.rng.randrange(1, 7))]
        batch = [(raw, types) for raw, types in batch if raw]
        results = self.net.block(*(raw for raw, _ in batch))
        self.feed_twin(self.net.blocks[-1])
        for (_, types), result in zip(batch, results, strict=True):
            # Past decoding and the envelope, the fee is charged (and its event kept) whatever the messages do.
            if len(types) == 1 and any(event.type == "fee" for event in result.events):
                self.reached[types[0]] += 1
            if len(types) == 1 and result.ok:
                self.succeeded[types[0]] += 1

    def close(self) -> None:
        self.net.app.store.close()
        self.twin.store.close()


def run_fuzz(folder: Path, blocks: int, seed: int) -> Fuzz:
    fuzz = Fuzz(folder, seed)
    try:
        for _ in range(blocks):
            fuzz.block()
    finally:
        fuzz.close()
    return fuzz


def check_fuzz(folder: Path, blocks: int, seed: int) -> None:
    fuzz = run_fuzz(folder, blocks, seed)
    print(f"\n{blocks} blocks, seed {seed}; handlers reached by type:", dict(sorted(fuzz.reached.items())),
          "; succeeded:", dict(sorted(fuzz.succeeded.items())))
    assert [t for t in sorted(MESSAGE_TYPES) if not fuzz.reached[t]] == []


def test_signed_well_formed_transactions_of_every_type_with_mutated_fields(tmp_path: Path) -> None:
    check_fuzz(tmp_path, BLOCKS, SEED)


@pytest.mark.long
@pytest.mark.skipif(not os.environ.get("GRIDMINT_LONG"), reason="long run: set GRIDMINT_LONG=1")
def test_deep_fuzz_long_run(tmp_path: Path) -> None:
    check_fuzz(tmp_path, LONG_BLOCKS, int(os.environ.get("GRIDMINT_FUZZ_SEED", "2")))


def test_the_mutator_knows_every_field_kind_and_makes_both_kinds_of_value() -> None:
    mutator = Mutator(random.Random(1))
    for _, cls in sorted(MESSAGE_TYPES.items()):
        for name, check in cls.FIELDS:
            for _ in range(20):
                good, bad = mutator.good(check), mutator.bad(check)
                check(name, good)  # accepted
                with pytest.raises(ChainError):
                    check(name, bad)
                codec.encode(good)  # every well-formed value can be sent


# --- tests of the test: a deliberate bug must make the fuzz fail ---------------------------------------------


def caught(tmp_path: Path, blocks: int = 60) -> str:
    with pytest.raises(AssertionError) as failure:
        run_fuzz(tmp_path, blocks, SEED)
    return str(failure.value)


def test_the_fuzz_catches_a_transfer_that_credits_a_grain_too_many(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    send = bank.MODULE.handlers[bank.MsgSend]

    def one_grain_too_many(ctx: Any, msg: bank.MsgSend) -> None:
        send(ctx, msg)
        bank.credit(ctx.state, msg.to, 1)

    monkeypatch.setitem(bank.MODULE.handlers, bank.MsgSend, one_grain_too_many)
    assert "bank/supply" in caught(tmp_path)


def test_the_fuzz_catches_an_unforeseen_exception_on_a_large_price(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bid = market.MODULE.handlers[market.MsgBid]

    def overflow(ctx: Any, msg: market.MsgBid) -> None:
        if msg.price > 2**63:
            raise OverflowError("price does not fit an int64")  # as a careless conversion would
        bid(ctx, msg)

    monkeypatch.setitem(market.MODULE.handlers, market.MsgBid, overflow)
    assert "internal error" in caught(tmp_path, blocks=200)


def test_the_fuzz_catches_two_apps_that_disagree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create = market.MODULE.handlers[market.MsgCreateDeployment]
    calls = Counter[str]()

    def counted(ctx: Any, msg: market.MsgCreateDeployment) -> None:
        create(ctx, msg)
        calls["orders"] += 1
        ctx.state.set_int(b"market/calls", calls["orders"])  # process-wide: the second app writes other numbers

    monkeypatch.setitem(market.MODULE.handlers, market.MsgCreateDeployment, counted)
    assert "disagree" in caught(tmp_path)
