"""No input can stop a node: random and mutated query paths (every real shape, mutated arguments, data and heights)
and random and mutated signed transactions (every message type, mutated fields and envelopes, mutated bytes) go
straight into the App. No exception escapes; every refusal carries a registered code with a codespace and a
sentence; a refused query or transaction changes nothing, neither committed state (app hash, height and every
key/value pair) nor the mempool's view; blocks made of what was accepted (and some of what was refused) keep
every invariant.

10,000 queries and 10,000 transactions in CI; GRIDMINT_LONG=1 runs 1,000,000 of each (GRIDMINT_FUZZ_SEED picks
the seed)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from gridmint.chain import bank, codec
from gridmint.chain.app import MODULES, NONCE_PREFIX, VERIFIED_CACHE_BYTES, App, QueryResult, TxResult
from gridmint.chain.bank import MsgSend
from gridmint.chain.errors import lookup
from gridmint.chain.staking import MsgSetTake
from gridmint.chain.state import CommittedView
from tests.chain.hostile_cases import ADDRESS, QUERY_SHAPES, TxMaker, build_world, message_classes, query_case
from tests.support.chain import FEE, Driver, balances, key

CI_CASES = 10_000
LONG_CASES = 1_000_000
BLOCK_EVERY = 250  # transactions checked between two blocks
FULL_DIGEST_EVERY = 1  # compare every key/value pair after this many refusals (1: after each one)


def committed(app: App) -> tuple[bytes, int, bytes]:
    """App hash, height, and a digest of every committed key/value pair (what a refusal must leave alone)."""
    digest = hashlib.sha256()
    for name, value in app.store.all_pairs():
        digest.update(len(name).to_bytes(4, "big") + name + len(value).to_bytes(4, "big") + value)
    return app.store.app_hash, app.store.height, digest.digest()


def error_name(result: QueryResult | TxResult) -> str:
    kind = lookup(result.codespace, result.code)
    assert kind is not None, f"unregistered code {result.codespace}/{result.code}"
    return kind.name


def assert_coded(result: QueryResult | TxResult, case: object) -> None:
    if result.code == 0:
        return
    kind = lookup(result.codespace, result.code)
    assert kind is not None, f"unregistered code {result.codespace}/{result.code} for {case!r}"
    assert kind.name != "internal_error", f"an unforeseen exception for {case!r}: {result.log}"
    assert result.log and result.log.encode("utf-8"), case  # a sentence that the ABCI answer can carry


def run_queries(world: Driver, count: int, seed: int) -> int:
    """``count`` hostile queries; returns how many were refused."""
    rng = random.Random(seed)
    app = world.app
    before = committed(app)
    refused = 0
    for _ in range(count):
        case = query_case(rng, app.store.height)
        result = app.query(*case)
        assert_coded(result, case)
        if result.code == 0:
            codec.decode(result.value)
        else:
            refused += 1
        assert committed(app) == before, case  # queries never write, refused or not
    return refused


def run_transactions(world: Driver, count: int, seed: int) -> tuple[int, int]:
    """``count`` hostile transactions through check_tx, a block after every ``BLOCK_EVERY``; returns (accepted,
    refused)."""
    app = world.app
    maker = TxMaker(seed)

    def nonce_of(address: bytes) -> int:
        return CommittedView(app.store).get_int(NONCE_PREFIX + address)

    maker.sync(nonce_of)
    rng = random.Random(seed + 1)
    accepted_total = refused_total = 0
    accepted: list[bytes] = []
    refused: list[bytes] = []
    before = committed(app)
    for index in range(count):
        name, raw = maker.make()
        mempool_view = dict(app._check_state.writes)  # what check_tx has admitted so far
        result = app.check_tx(raw)
        assert_coded(result, raw.hex())
        if result.ok:
            accepted.append(raw)
            maker.accepted(name)
        else:
            refused.append(raw)
            assert app._check_state.writes == mempool_view, raw.hex()
            if len(refused) % FULL_DIGEST_EVERY == 0:
                assert committed(app) == before, raw.hex()
        assert app.verified_cache_bytes <= VERIFIED_CACHE_BYTES
        if (index + 1) % BLOCK_EVERY == 0 or index + 1 == count:
            accepted_total += len(accepted)
            refused_total += len(refused)
            block = accepted + rng.sample(refused, min(20, len(refused)))  # a careless proposer's extras
            rng.shuffle(block)
            for result in world.block(*block):
                assert_coded(result, "in a block")
            assert app.check_invariants() == []
            accepted, refused = [], []
            maker.sync(nonce_of)
            before = committed(app)
    return accepted_total, refused_total


def test_every_registered_query_has_a_shape_in_the_fuzzer() -> None:
    registered = {f"/{module.name}/{name}" for module in MODULES for name in module.queries if name != "*"}
    registered |= {f"/{module.name}/{{netuid}}" for module in MODULES if "*" in module.queries}
    shapes = {"/".join(shape.split("/")[:3]) for shape in QUERY_SHAPES}
    assert registered <= shapes, sorted(registered - shapes)


def test_every_message_type_is_generated() -> None:
    assert len(message_classes()) == len({cls for module in MODULES for cls in module.handlers}) >= 20


@pytest.fixture
def world(tmp_path: Path) -> Driver:
    return build_world(tmp_path)


def test_hostile_queries_are_refused_with_a_code_and_change_nothing(world: Driver) -> None:
    refused = run_queries(world, CI_CASES, seed=11)
    assert CI_CASES // 10 < refused < CI_CASES  # both kinds of answer were exercised


def test_hostile_transactions_are_refused_with_a_code_and_change_nothing(world: Driver) -> None:
    accepted, refused = run_transactions(world, CI_CASES, seed=12)
    assert accepted > 100 and refused > CI_CASES // 2, (accepted, refused)


@pytest.mark.long
@pytest.mark.timeout(4 * 3600)  # two million cases: about an hour on one core of the reference machine
@pytest.mark.skipif(not os.environ.get("GRIDMINT_LONG"), reason="long run: set GRIDMINT_LONG=1")
def test_hostile_input_long_run(world: Driver) -> None:
    seed = int(os.environ.get("GRIDMINT_FUZZ_SEED", "3"))
    run_queries(world, LONG_CASES, seed)
    run_transactions(world, LONG_CASES, seed + 1)


ISSUE_PATHS = {  # each of these made the query raise OverflowError, dropped the ABCI connection and stopped CometBFT
    "/subnets/99999": "netuid", f"/subnets/{2**64}/metagraph": "netuid",
    f"/market/order/{2**64}": "order id", f"/market/lease/{10**30}": "lease id",
    f"/escrow/account/{2**64}": "escrow account id", f"/staking/hotkey/{10**6}/{ADDRESS}": "netuid",
}


@pytest.mark.parametrize("path", sorted(ISSUE_PATHS))
def test_out_of_range_path_numbers_are_refused_with_the_range_expected(world: Driver, path: str) -> None:
    before = committed(world.app)
    result = world.app.query(path)
    assert (result.codespace, error_name(result)) == ("query", "bad_request")
    assert result.log.startswith(ISSUE_PATHS[path]) and "expected a whole number from 0 to" in result.log
    assert committed(world.app) == before


@pytest.mark.parametrize(("height", "name"), [(-1, "bad_request"), (2**63, "height_unavailable"),
                                              (10**30, "height_unavailable")])
def test_a_height_out_of_range_is_refused(world: Driver, height: int, name: str) -> None:
    result = world.app.query("/app/info", height=height)
    assert (result.codespace, error_name(result)) == ("query", name)


def test_an_unforeseen_exception_in_a_query_is_a_coded_refusal(world: Driver, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(bank.MODULE.queries, "supply", broken)
    before = committed(world.app)
    result = world.app.query("/bank/supply")
    assert (result.codespace, error_name(result)) == ("app", "internal_error")
    assert "ZeroDivisionError" in result.log and "ZeroDivisionError" in caplog.text
    assert committed(world.app) == before


def test_an_unforeseen_exception_in_a_handler_fails_one_transaction(world: Driver,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """check_tx refuses it with a code and keeps nothing; in a block it fails like any failed transaction (fee
    and nonce kept), and the rest of the block runs."""
    def broken(ctx: object, msg: object) -> None:
        raise OverflowError("a bug")

    monkeypatch.setitem(world.app._handlers, MsgSetTake, broken)
    world.send("val", MsgSetTake(key("val/hot").address, 1))
    (raw,) = [tx for _, tx in world.queued]
    mempool_view = dict(world.app._check_state.writes)
    refused = world.app.check_tx(raw)
    assert error_name(refused) == "internal_error"
    assert world.app._check_state.writes == mempool_view
    world.send("tenant", MsgSend(key("miner").address, 5))
    balance_before = balances(world.app, "val")["val"]
    results = world.commit()
    assert error_name(results["val"][0]) == "internal_error"
    assert results["tenant"][0].ok
    assert balances(world.app, "val")["val"] == balance_before - FEE
    assert world.app.check_invariants() == []
