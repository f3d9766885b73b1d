"""Genesis export: a chain exported at a height and started again from the file has the same state, key for key,
and the same app hash; it runs on exactly as the old one would; a module that gained a parameter runs from it; and
a file whose records are malformed or disagree with each other is refused with nothing kept."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import credit, market, neurons
from gridmint.chain.app import MODULES, App
from gridmint.chain.authority import MsgPropose
from gridmint.chain.bank import MsgSend
from gridmint.chain.codec import decode
from gridmint.chain.credit import MsgSettle
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.genesis import load_genesis, validate_genesis, write_genesis
from gridmint.chain.market import MsgAcceptBid, MsgBid, MsgCreateDeployment, MsgWithdraw
from gridmint.chain.module import ModuleSpec
from gridmint.chain.module_genesis import ModuleGenesis
from gridmint.chain.params import params_reader
from gridmint.chain.receipts import Receipt, sign_receipt
from gridmint.chain.staking import MsgAddStake, MsgRemoveStake, MsgSetTake
from gridmint.chain.state import CommittedView
from gridmint.chain.store import Store
from gridmint.chain.subnets import MsgAnnounceEndpoint, MsgSetHyperparam
from gridmint.chain.weights import MsgCommitWeights, MsgSetWeights, commit_hash
from tests.chain.chain_world import GATEWAY, CheckedDriver, build_world, expect_ok
from tests.support.chain import CHAIN_ID, MINT, Chain, genesis, key, signed

GENESIS_TIME = "2026-06-01T00:00:00Z"
APP_KEYS = (b"app/chain_id", b"app/tx_params", b"tx/nonce/")  # the app's own keys; every other is a module's


def busy_world(folder: Path) -> CheckedDriver:
    """chain_world's subnet, stakes, gateway, line and providers, and then state in every module: weights set and
    committed, an epoch's bonds and dividends, a delegation, a take, an endpoint, an open order with a bid, a
    running lease with its escrow, a settled credit batch, a second authority and an open proposal."""
    net = build_world(folder)
    view = CommittedView(net.app.store)
    size = neurons.require_subnet(view, 1)["n"]
    net.send("v1/hot", MsgSetWeights(1, list(range(size)), [1 + uid for uid in range(size)]))
    net.send("authority-0", MsgPropose("add", key("new-authority").public_key, 10, "new-authority"))
    net.send("t1", MsgCreateDeployment(1_000, 2_048, 1, ["A100"], 40, MINT // 100, b"\x01" * 32, MINT))
    net.send("d1", MsgAddStake(1, key("v1/hot").address, 50 * MINT))
    net.send("v1", MsgSetTake(key("v1/hot").address, 5_000))
    net.send("m1/hot", MsgAnnounceEndpoint(1, "https://miner.example", ["model"], 1_000, 1))
    expect_ok(net)
    net.send("p1", MsgBid(1, MINT // 200))
    net.send("t2", MsgCreateDeployment(1_000, 2_048, 1, ["H100"], 40, MINT // 100, b"\x02" * 32, MINT))
    net.send("authority-0", MsgPropose("add", key("x1/hot").public_key, 10, "pending"))  # 1 of 2 votes: stays open
    net.send("owner", MsgSetHyperparam(1, "commit_reveal", 1))
    net.send(GATEWAY, MsgSettle(1, [receipt_entry(net, "c1", "m1", 9_000, 3)]))
    expect_ok(net)
    net.send("t1", MsgAcceptBid(1, key("p1").address))
    net.send("p2", MsgBid(2, MINT // 300))
    net.send("v2/hot", MsgCommitWeights(1, commit_hash(1, key("v2/hot").address, [0], [1], b"salt")))
    net.send("v2", MsgRemoveStake(1, key("v2/hot").address, 20 * MINT))
    expect_ok(net)
    net.advance(3)
    return net


def receipt_entry(net: CheckedDriver, consumer: str, miner: str, tokens: int, requests: int) -> list[Any]:
    line = credit.get_line(CommittedView(net.app.store), key(consumer).address, key(GATEWAY).address)
    grains = credit.max_grains(tokens, requests, int(line["max_price_per_1k"]))
    receipt = Receipt(CHAIN_ID, int(line["id"]), key(GATEWAY).address, key(consumer).address,
                      key(f"{miner}/hot").address, tokens, grains, requests)
    return [key(consumer).address, key(f"{miner}/hot").public_key, tokens, grains, requests,
            sign_receipt(key(f"{miner}/hot"), receipt)]


@dataclass
class Exported:
    net: CheckedDriver
    document: dict[str, Any]
    path: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    folder = tmp_path_factory.mktemp("export")
    net = busy_world(folder)
    path = folder / "exported.json"
    write_genesis(path, net.app.export_genesis(GENESIS_TIME))
    return Exported(net, net.app.export_genesis(GENESIS_TIME), path)


def restart(folder: Path, path: Path, modules: tuple[ModuleSpec, ...] = MODULES) -> tuple[App, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    app = App(Store(folder / "restarted.sqlite"), modules)
    _, app_hash = app.init_chain(load_genesis(path, modules))
    return app, app_hash


def run_block(app: App, height: int, txs: list[bytes]) -> tuple[bytes, list[tuple[int, str]]]:
    result = app.finalize_block(txs, height, height * 10**9, key("authority-0").address)
    app.commit()
    return result.app_hash, [(r.code, r.codespace) for r in result.tx_results]


def test_every_stored_key_belongs_to_a_module_or_the_app(exported: Exported) -> None:
    """What export relies on: a module keeps its state under ``<module>/``, so its records are all of it."""
    namespaces = tuple(f"{module.name}/".encode() for module in MODULES) + APP_KEYS
    strays = [key for key, _ in exported.net.app.store.all_pairs() if not key.startswith(namespaces)]
    assert strays == []


def test_the_export_holds_every_module_state(exported: Exported) -> None:
    state = exported.document["app_state"]
    groups = {group for name, section in state.items() if isinstance(section, dict)
              for group in section.get("records", {})}
    for expected in ("subnets/net/", "subnets/vec/", "subnets/bonds/", "subnets/endpoint/", "subnets/hotkey/",
                     "staking/pool/", "staking/position/", "staking/take/", "staking/live/", "weights/w/",
                     "weights/commit/", "emission/minted", "market/provider/", "market/order/", "market/bid/",
                     "market/lease/", "escrow/account/", "escrow/due/", "credit/gateway/", "credit/line/",
                     "credit/paid/", "authority/proposal/"):
        assert any(group.startswith(expected) for group in groups), f"nothing exported under {expected}"
    assert {entry["module"] for entry in state["bank"]["held"]} >= {"staking", "escrow", "market", "credit",
                                                                   "subnets"}
    assert len(state["authority"]["members"]) == 2 and state["nonces"]


def test_a_chain_restarted_from_its_export_has_the_same_state_and_runs_on_alike(tmp_path: Path) -> None:
    net = busy_world(tmp_path)  # its own: this test runs the old chain on
    old, height = net.app, net.app.store.height
    path = tmp_path / "exported.json"
    write_genesis(path, old.export_genesis(GENESIS_TIME))
    new, genesis_hash = restart(tmp_path, path)
    assert genesis_hash == old.store.app_hash
    assert load_genesis(path, MODULES).initial_height == height + 1
    # The same blocks on both: a transfer, a lease withdrawal, a reused nonce (refused on both), and an epoch.
    c2, p1 = (CommittedView(old.store).get_int(b"tx/nonce/" + key(name).address) for name in ("c2", "p1"))
    blocks = [[signed(key("c2"), c2 + 1, MsgSend(key("c1").address, MINT))],
              [signed(key("p1"), p1 + 1, MsgWithdraw(1)), signed(key("c2"), c2 + 1, MsgSend(key("c1").address, 1))],
              *[[] for _ in range(6)]]
    for offset, txs in enumerate(blocks, start=1):
        assert run_block(new, height + offset, txs) == run_block(old, height + offset, txs)
    assert list(new.store.all_pairs()) == list(old.store.all_pairs())
    assert new.check_invariants() == []


def test_an_export_at_a_past_height_restarts_that_height(exported: Exported, tmp_path: Path) -> None:
    past = exported.net.blocks[-4]
    path = tmp_path / "past.json"
    write_genesis(path, exported.net.app.export_genesis(GENESIS_TIME, height=past.height))
    new, genesis_hash = restart(tmp_path, path)
    assert genesis_hash == past.app_hash
    assert load_genesis(path, MODULES).initial_height == past.height + 1
    for block in exported.net.blocks[-3:]:  # the blocks the old chain made after that height, replayed on the new
        result = new.finalize_block(list(block.txs), block.height, block.time_ns, key("authority-0").address)
        new.commit()
        assert result.app_hash == block.app_hash
    with pytest.raises(ChainError, match="not committed"):
        exported.net.app.export_genesis(GENESIS_TIME, height=exported.net.app.store.height + 1)


def test_a_pruned_height_cannot_be_exported(tmp_path: Path) -> None:
    app = App(Store(tmp_path / "pruned.sqlite", keep_recent=2))
    app.init_chain(genesis())
    chain = Chain(app)
    for _ in range(6):
        chain.block(signed_transfer(app, chain.height))
    with pytest.raises(ChainError) as caught:
        app.export_genesis(GENESIS_TIME, height=1)
    assert caught.value.kind.name == "height_unavailable"


def signed_transfer(app: App, height: int) -> bytes:
    return signed(key("alice"), height + 1, MsgSend(key("bob").address, 1 + height))


# --- an upgraded module from an exported state -------------------------------------------------------------


MARKET_PARAMS = market.Params


@dataclass(frozen=True)
class MarketParamsV2(MARKET_PARAMS):
    """The market as a later release might have it: one more parameter, with a default."""

    max_leases_per_tenant: int = 64


def run_from_export(folder: Path, exported: Exported, modules: tuple[ModuleSpec, ...]) -> App:
    """A chain from the exported file that runs a block with p1 withdrawing from its lease, then an epoch's worth."""
    app, _ = restart(folder, exported.path, modules)
    height = int(exported.document["initial_height"]) - 1
    nonces = {entry["address"]: entry["nonce"] for entry in exported.document["app_state"]["nonces"]}
    withdraw = signed(key("p1"), nonces[format_address(key("p1").address)] + 1, MsgWithdraw(1))
    assert run_block(app, height + 1, [withdraw])[1] == [(0, "")]
    for offset in range(2, 8):
        run_block(app, height + offset, [])
    assert app.check_invariants() == []
    return app


def test_a_module_with_a_new_parameter_runs_from_an_exported_state(exported: Exported, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert "max_leases_per_tenant" not in exported.document["app_state"]["market"]["params"]
    unchanged = run_from_export(tmp_path / "unchanged", exported, MODULES)
    bounds = {**market.BOUNDS, "max_leases_per_tenant": (1, 1_000)}
    upgraded_genesis = ModuleGenesis(market.NAME, MarketParamsV2, bounds, market.PARAMS_KEY)
    monkeypatch.setattr(market, "Params", MarketParamsV2)  # what the module's code reads its parameters as
    monkeypatch.setattr(market, "get_params", params_reader(market.PARAMS_KEY, MarketParamsV2))
    upgraded_market = dataclasses.replace(
        market.MODULE, validate_genesis=upgraded_genesis.validate, init_genesis=upgraded_genesis.init,
        export_genesis=upgraded_genesis.export, queries={**market.MODULE.queries, "params": upgraded_genesis.query})
    modules = tuple(upgraded_market if module.name == market.NAME else module for module in MODULES)
    upgraded = run_from_export(tmp_path / "upgraded", exported, modules)
    params = decode(upgraded.query("/market/params").value)
    assert params["max_leases_per_tenant"] == 64 and params["order_ttl"] == 12  # the default; the file's value
    # The same blocks ran on both: only the market's parameters differ (the upgraded ones carry the new one).
    after, before = dict(upgraded.store.all_pairs()), dict(unchanged.store.all_pairs())
    assert [key for key in sorted(after.keys() | before.keys()) if after.get(key) != before.get(key)] == [
        market.PARAMS_KEY]


# --- refusals ----------------------------------------------------------------------------------------------


def broken_document(exported: Exported, change: Any) -> dict[str, Any]:
    document = copy.deepcopy(exported.document)
    change(document["app_state"])
    return document


def first_record(section: dict[str, Any], group_start: str) -> tuple[str, str]:
    group = next(g for g in sorted(section["records"]) if g.startswith(group_start))
    return group, sorted(section["records"][group])[0]


def _drop_escrow_account(app_state: dict[str, Any]) -> None:
    group, rest = first_record(app_state["escrow"], "escrow/account/")
    del app_state["escrow"]["records"][group][rest]


def _foreign_group(app_state: dict[str, Any]) -> None:
    app_state["market"]["records"]["bank/balance/"] = {"00" * 20: "zwAAAAAAAAAB"}


def _params_in_records(app_state: dict[str, Any]) -> None:
    app_state["market"]["records"]["market/params"] = {"": "gA=="}


def _uppercase_hex(app_state: dict[str, Any]) -> None:
    group, rest = first_record(app_state["market"], "market/lease/")
    records = app_state["market"]["records"][group]
    records[rest.upper() + "0A"] = records.pop(rest)


def _non_canonical_value(app_state: dict[str, Any]) -> None:
    group, rest = first_record(app_state["escrow"], "escrow/next_id")
    app_state["escrow"]["records"][group][rest] = "zQAB"  # 1 as a 16-bit integer: not its shortest encoding


def _listed_twice(app_state: dict[str, Any]) -> None:
    group, rest = first_record(app_state["market"], "market/lease/")
    value = app_state["market"]["records"][group][rest]
    full = group.encode() + bytes.fromhex(rest)
    app_state["market"]["records"]["market/"] = {full[len(b"market/"):].hex(): value}


def _held_dropped(app_state: dict[str, Any]) -> None:
    app_state["bank"]["held"] = [entry for entry in app_state["bank"]["held"] if entry["module"] != "staking"]


def _nonce_zero(app_state: dict[str, Any]) -> None:
    app_state["nonces"][0]["nonce"] = 0


def _held_twice(app_state: dict[str, Any]) -> None:
    app_state["bank"]["held"].append(app_state["bank"]["held"][0])


def _proposal_without_members(app_state: dict[str, Any]) -> None:
    app_state["authority"]["records"]["authority/member/"] = {"00" * 20: "gA=="}


@pytest.mark.parametrize("change, expected", [
    (_foreign_group, "market.records: group 'bank/balance/' is not a key of this module"),
    (_params_in_records, "written from the section's own fields"),
    (_uppercase_hex, "lowercase hex"),
    (_non_canonical_value, "canonical"),
    (_listed_twice, "listed twice"),
    (_nonce_zero, "nonces[0].nonce: expected a whole number from 1"),
    (_held_twice, "module "),
    (_proposal_without_members, "written from the section's own fields"),
])
def test_malformed_records_are_refused_by_name(exported: Exported, change: Any, expected: str) -> None:
    with pytest.raises(ChainError) as caught:
        validate_genesis(broken_document(exported, change), MODULES)
    assert caught.value.kind.name == "invalid_genesis" and expected in caught.value.message


@pytest.mark.parametrize("change, expected", [
    (_drop_escrow_account, "escrow/held"),  # the bank still holds the lease's deposit
    (_held_dropped, "staking/held"),  # the pools' stakes are no longer held
])
def test_records_that_disagree_are_refused_and_nothing_is_kept(exported: Exported, tmp_path: Path, change: Any,
                                                               expected: str) -> None:
    genesis = validate_genesis(broken_document(exported, change), MODULES)
    store = Store(tmp_path / "refused.sqlite")
    app = App(store)
    with pytest.raises(ChainError) as caught:
        app.init_chain(genesis)
    assert caught.value.kind.name == "invalid_genesis" and expected in caught.value.message
    assert store.height == 0 and list(store.all_pairs()) == []
    assert app.chain_id == ""
    _, app_hash = app.init_chain(validate_genesis(exported.document, MODULES))  # the same app takes a good file
    assert app_hash == exported.net.app.store.app_hash


def _entry_leaves(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A leaf of each kind an exported file adds: one entry of each record group, a nonce, a held amount."""
    leaves: list[tuple[Any, ...]] = [("nonces", 0, "nonce"), ("nonces", 0, "address"), ("bank", "held", 0, "module"),
                                     ("bank", "held", 0, "amount")]
    for name, section in sorted(document["app_state"].items()):
        for group, entries in sorted(section.get("records", {}).items()) if isinstance(section, dict) else []:
            leaves.append((name, "records", group, sorted(entries)[0]))
    return leaves


def _encoded(value: Any) -> str:
    import base64

    from gridmint.chain.codec import encode
    return base64.b64encode(encode(value)).decode()


HOSTILE_RECORD_VALUES: list[Any] = [-1, 0, 2**64, True, None, 1.5, "", "AA==", "!!", "x" * 1_000, [], {},
                                    _encoded(5), _encoded({}), _encoded([b"", 1]), _encoded({"id": -1})]


def test_every_exported_entry_given_hostile_values_is_refused_or_starts_a_chain(exported: Exported) -> None:
    """Each kind of entry of an exported file, replaced by each hostile value: a coded refusal (validation or the
    invariants on the genesis state), or a genesis that starts a chain; never an exception of another kind."""
    started = refused = 0
    for path in _entry_leaves(exported.document):
        for value in HOSTILE_RECORD_VALUES:
            document = copy.deepcopy(exported.document)
            target: Any = document["app_state"]
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
            store = Store(":memory:")  # init_chain writes nothing to it: what it builds stays in the block's state
            try:
                App(store).init_chain(validate_genesis(document, MODULES))
                started += 1
            except ChainError as refusal:
                assert refusal.kind.name == "invalid_genesis" and refusal.message, (path, value)
                refused += 1
            finally:
                store.close()
    assert refused > started > 0  # most are refused; a few land where they fit (an empty index entry, say)
