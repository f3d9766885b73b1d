from __future__ import annotations

import copy
from typing import Any

import pytest

from gridmint.chain.app import MODULES
from gridmint.chain.errors import ChainError
from gridmint.chain.genesis import parse_time_ns, validate_genesis
from tests.support.chain import genesis


def document() -> dict[str, Any]:
    return copy.deepcopy(genesis(authorities=2).document)


def broken(path: str, value: Any) -> dict[str, Any]:
    doc = document()
    target = doc
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    target[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize("path, value, expected", [
    ("chain_id", "Has Spaces", "chain_id"),
    ("genesis_time", "yesterday", "genesis_time"),
    ("initial_height", "0", "initial_height"),
    ("app_state.unknown", {}, "unknown sections"),
    ("app_state.tx.max_tx_bytes", 10, "max_tx_bytes"),
    ("app_state.bank.balances.0.amount", 0, "bank.balances[0]"),
    ("app_state.bank.balances.0.address", "gm1bad", "bank.balances[0]"),
    ("app_state.bank.params.min_tx_fee", -1, "min_tx_fee"),
    ("app_state.authority.members", [], "authority.members"),
    ("app_state.authority.members.0.pub_key", "AAAA", "pub_key"),
    ("app_state.authority.members.0.power", 0, "power"),
    ("app_state.authority.params.voting_period", 0, "voting_period"),
    ("app_state.market", {"params": {"max_bids": 0}}, "market.params.max_bids"),
    ("app_state.emission", {"rate": 1}, "emission: expected"),
    ("app_state.subnets", {"params": {"default_tempo": 1}}, "subnets.params.default_tempo"),
    # numbers are bounded where they are read: no height, amount or power beyond what the chain can hold
    ("initial_height", str(2**64), "initial_height"),
    ("initial_height", 10**30, "initial_height"),
    ("initial_height", "-1", "initial_height"),
    ("initial_height", True, "initial_height"),
    ("initial_height", 1.5, "initial_height"),
    ("initial_height", "１", "initial_height"),
    ("initial_height", " 1", "initial_height"),
    ("genesis_time", "２０２６-01-01T00:00:00Z", "genesis_time"),
    ("genesis_time", "2026-02-30T00:00:00Z", "genesis_time"),
    ("genesis_time", "2026-01-01T00:00:00+24:00", "genesis_time"),
    ("chain_id", "gridmint-dev\n", "chain_id"),
    ("app_state.bank.balances.0.amount", 2**96, "bank.balances[0]"),
    ("app_state.bank.params.min_tx_fee", 2**64, "min_tx_fee"),
    ("app_state.authority.members.0.power", 2**64, "power"),
    ("app_state.authority.members.0.name", "\ud800", "name"),
    ("app_state.authority.members.0.name", "tab\there", "name"),
])
def test_invalid_genesis_names_the_field(path: str, value: Any, expected: str) -> None:
    with pytest.raises(ChainError) as caught:
        validate_genesis(broken(path, value), MODULES)
    assert caught.value.kind.name == "invalid_genesis" and expected in caught.value.message


def test_duplicates_are_refused() -> None:
    doc = document()
    doc["app_state"]["bank"]["balances"].append(doc["app_state"]["bank"]["balances"][0])
    with pytest.raises(ChainError, match="listed twice"):
        validate_genesis(doc, MODULES)
    doc = document()
    doc["app_state"]["authority"]["members"].append(doc["app_state"]["authority"]["members"][0])
    with pytest.raises(ChainError, match="listed twice"):
        validate_genesis(doc, MODULES)


def test_export_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.chain import Chain, make_app

    chain = Chain(make_app(tmp_path, genesis(authorities=2)))
    chain.block()
    exported = chain.app.export_genesis("2026-01-01T00:00:00Z")
    again = validate_genesis(exported, MODULES)
    original = genesis(authorities=2)
    assert again.modules == original.modules and again.tx_params == original.tx_params
    assert exported["initial_height"] == "2"


@pytest.mark.parametrize("text, seconds", [
    ("1970-01-01T00:00:00Z", 0), ("2000-02-29T12:00:00Z", 951_825_600), ("2026-11-23T13:20:31+01:00", 1_795_436_431),
])
def test_time_parsing_in_integers(text: str, seconds: int) -> None:
    assert parse_time_ns(text) == seconds * 10**9


def test_fractional_seconds() -> None:
    assert parse_time_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_time_ns("1970-01-01T00:00:00.000000001Z") == 1


HOSTILE_LEAVES: list[Any] = [-1, 0, 2**63, 2**64, 2**96, 10**30, True, None, 1.5, "1", "", "\ud800", "x" * 10_000, [],
                             {}]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for name in sorted(value) for leaf in _leaves(value[name], (*path, name))]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, (*path, index))]
    return [path]


def test_every_field_of_a_genesis_given_hostile_values_is_refused_or_starts_a_chain(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each leaf of a full genesis, replaced by each hostile value: either a coded refusal, or a genesis that
    init_chain loads (nothing that validation let through can break the first block)."""
    from gridmint.chain.app import App
    from gridmint.chain.store import Store

    started = 0
    for path in _leaves(document()):
        for value in HOSTILE_LEAVES:
            doc = document()
            target = doc
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
            try:
                checked = validate_genesis(doc, MODULES)
            except ChainError as refusal:
                assert refusal.kind.name == "invalid_genesis" and refusal.message, (path, value)
                continue
            store = Store(tmp_path / f"{started}.sqlite")
            App(store).init_chain(checked)
            store.close()
            started += 1
    assert started > 0  # some values are fine where they land (a zero fee, say)
