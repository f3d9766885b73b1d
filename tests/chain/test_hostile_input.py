"""No input can stop a node: random and mutated query paths (every real shape, mutated arguments, data and heights)
and random and mutated signed transactions (every message type, mutated fields and envelopes, mutated bytes) go
straight into the App. No exception escapes; every refusal carries a registered code with a codespace and a
sentence; a refused query or transaction changes nothing, neither committed state (app hash, height and every
key/value pair) nor the mempool's view; blocks made of what was accepted (and some of what was refused) keep
every invariant.

10,000 queries and 10,000 transactions in CI; GRIDMINT_LONG=1 runs 500,000 of each (GRIDMINT_FUZZ_SEED picks
the seed)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from gridmint.chain import codec
from gridmint.chain.app import MODULES, NONCE_PREFIX, VERIFIED_CACHE_BYTES, App, QueryResult, TxResult
from gridmint.chain.errors import lookup
from gridmint.chain.state import CommittedView
from tests.chain.hostile_cases import QUERY_SHAPES, TxMaker, build_world, message_classes, query_case
from tests.helpers import Driver

CI_CASES = 10_000
LONG_CASES = 500_000
BLOCK_EVERY = 250  # transactions checked between two blocks
FULL_DIGEST_EVERY = 1  # compare every key/value pair after this many refusals (1: after each one)


def committed(app: App) -> tuple[bytes, int, bytes]:
    """App hash, height, and a digest of every committed key/value pair (what a refusal must leave alone)."""
    digest = hashlib.sha256()
    for key, value in app.store.all_pairs():
        digest.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
    return app.store.app_hash, app.store.height, digest.digest()


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
@pytest.mark.skipif(not os.environ.get("GRIDMINT_LONG"), reason="long run: set GRIDMINT_LONG=1")
def test_hostile_input_long_run(world: Driver) -> None:
    seed = int(os.environ.get("GRIDMINT_FUZZ_SEED", "3"))
    run_queries(world, LONG_CASES, seed)
    run_transactions(world, LONG_CASES, seed + 1)
