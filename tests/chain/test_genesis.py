from __future__ import annotations

import copy
from typing import Any

import pytest

from gridmint.chain.app import MODULES
from gridmint.chain.errors import ChainError
from gridmint.chain.genesis import parse_time_ns, validate_genesis
from tests.helpers import genesis


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
    from tests.helpers import Chain, make_app

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
