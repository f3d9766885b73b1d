"""The shape every module follows (DESIGN.md, "Modules"), checked over the app's module list so that a new module
is held to it too: the modules are the one registry of messages, and each keeps its errors and its state under its
own name."""

from __future__ import annotations

import dataclasses
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from gridmint.chain import bank, market
from gridmint.chain.app import MESSAGE_TYPES, MODULES, App
from gridmint.chain.bank import MsgSend, Transfer
from gridmint.chain.codec import decode
from gridmint.chain.credit import MsgOpenCredit
from gridmint.chain.errors import registered
from gridmint.chain.market import MsgAcceptBid, MsgBid, MsgCreateDeployment
from gridmint.chain.module import EventData, message_registry
from gridmint.chain.module import event as declare_event
from gridmint.chain.module_genesis import ModuleGenesis
from gridmint.chain.state import CommittedView
from gridmint.chain.store import Store
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister
from tests.chain.chain_world import GATEWAY, build_world
from tests.support.chain import MINT, Chain, genesis, key, signed

SOURCES = Path(__file__).parents[2] / "src" / "gridmint" / "chain"


def test_the_chain_decodes_exactly_the_messages_its_modules_handle() -> None:
    handled = {msg.TYPE: msg for module in MODULES for msg in module.handlers}
    assert dict(MESSAGE_TYPES) == handled


def test_a_message_no_module_of_the_app_handles_is_unknown_to_it(tmp_path: Path) -> None:
    """An app without the market reads a market message as unknown (a coded refusal), not as a crash."""
    without_market = tuple(module for module in MODULES if module.name not in (market.NAME,))
    app = App(Store(tmp_path / "s.sqlite"), without_market)
    app.init_chain(genesis())
    result = app.check_tx(signed(key("alice"), 1, MsgCreateDeployment(1, 1, 0, [], 0, 1, b"\x01" * 32, 10)))
    assert (result.codespace, result.code) == ("tx", 7) and "unknown message type 'market/create_deployment'" in \
        result.log
    assert app.store.height == 0


def test_two_modules_cannot_handle_one_message_type() -> None:
    twice = (bank.MODULE, bank.MODULE)
    with pytest.raises(TypeError, match="bank/send is handled by two modules"):
        message_registry(twice)


REGISTRATION = re.compile(r'register\((NAME|"[a-z_]+"), (\d+), "([a-z_]+)"\)')


def test_each_codespace_is_registered_in_one_file() -> None:
    """One codespace, one table: every code of a module's codespace is registered in the same file, and nowhere
    outside chain/ (so the chain's reference lists them all)."""
    files: dict[str, set[str]] = defaultdict(set)
    found: set[tuple[str, int]] = set()
    for path in sorted(SOURCES.glob("*.py")):
        source = path.read_text()
        own = re.search(r'^NAME = "([a-z_]+)"', source, re.MULTILINE)
        for space, code, _ in REGISTRATION.findall(source):
            codespace = space.strip('"') if space != "NAME" else own.group(1) if own else "?"
            files[codespace].add(path.name)
            found.add((codespace, int(code)))
    assert {space: sorted(names) for space, names in files.items() if len(names) > 1} == {}
    modules = {module.name for module in MODULES}
    assert {(kind.module, kind.code) for kind in registered() if kind.module in modules} <= found


def test_what_a_message_creates_comes_back_in_its_result_data(tmp_path: Path) -> None:
    """A new subnet's netuid, a UID, an order, a lease, a line: the sender reads them from the result's data (canonical
    codec, one entry per message), not from event strings; a transaction that created nothing has no data."""
    net = build_world(tmp_path)
    net.send("owner", MsgCreateSubnet("text-generation", "second"), MsgRegister(2, key("x1/hot").address, 0))
    net.send("t1", MsgCreateDeployment(1_000, 2_048, 1, ["A100"], 40, MINT // 100, b"\x01" * 32, MINT))
    net.send("c2", MsgOpenCredit(key(GATEWAY).address, 10 * MINT, 50, 1_000_000, 250, 0, 0))
    net.send("d1", MsgSend(key("c1").address, 1))
    results = {name: result for name, (result,) in net.commit().items()}
    assert all(result.ok for result in results.values()), {n: r.log for n, r in results.items()}
    assert decode(results["owner"].data) == [{"netuid": 2}, {"netuid": 2, "uid": 0}]
    order = decode(results["t1"].data)[0]["order"]
    assert decode(results["c2"].data) == [{"line": 2}]
    assert results["d1"].data == b""
    net.send("p1", MsgBid(order, MINT // 200))
    net.commit()
    net.send("t1", MsgAcceptBid(order, key("p1").address))
    (accepted,) = net.commit()["t1"]
    assert decode(accepted.data) == [{"lease": 1}]
    assert CommittedView(net.app.store).get_value(market.LEASE_PREFIX + (1).to_bytes(8, "big"))["order"] == order


def test_each_module_declares_exactly_the_events_it_emits() -> None:
    """Events are declared (typed dataclasses listed in ``ModuleSpec.events``) and built where they happen: what a
    module's file emits is what it declares, and each declaration says what its attributes are."""
    for module in MODULES:
        source = (SOURCES / f"{module.name}.py").read_text()
        emitted = set(re.findall(r"\.emit\((\w+)\(", source))
        assert emitted == {event.__name__ for event in module.events}, module.name
        assert '.emit("' not in source, f"{module.name} emits an undeclared event by name"
        for event in module.events:
            assert event.TYPE and event.__doc__ and dataclasses.fields(event), event  # type: ignore[arg-type]
    types = [event.TYPE for module in MODULES for event in module.events]
    assert len(types) == len(set(types)), "two modules declare one event type"


def test_an_event_reads_as_its_fields_in_order() -> None:
    event = Transfer(sender="gm1a", recipient="gm1b", amount=5)
    assert event.attributes() == (("sender", "gm1a"), ("recipient", "gm1b"), ("amount", "5"))


def test_an_event_is_declared_once_a_frozen_dataclass_of_its_type() -> None:
    @declare_event("test_happened")
    class Happened(EventData):
        """Something of this test only."""

        what: str
        count: int

    happened = Happened(what="x", count=2)
    assert Happened.TYPE == "test_happened" and happened.attributes() == (("what", "x"), ("count", "2"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        happened.count = 3  # type: ignore[misc]
    for module in MODULES:
        for declared in module.events:
            assert declared.__dataclass_params__.frozen, declared  # type: ignore[attr-defined]


def test_each_module_declares_the_kinds_of_record_it_keeps() -> None:
    """What genesis checks an exported record against (tests/chain/test_export.py has every kind in use)."""
    for module in MODULES:
        genesis_functions = getattr(sys.modules[f"gridmint.chain.{module.name}"], "GENESIS", None)
        if isinstance(genesis_functions, ModuleGenesis):
            assert genesis_functions.records is not None, f"{module.name} declares no kinds of record"


def test_each_module_with_a_tunable_declares_bounded_params_in_genesis_export_and_a_query(tmp_path: Path) -> None:
    """Params in every module that has one: each field bounded, stored under ``<module>/params``, read from genesis,
    exported, and answered by ``/<module>/params``."""
    gen = genesis()
    app = App(Store(tmp_path / "s.sqlite"))
    app.init_chain(gen)
    Chain(app).block()
    exported = app.export_genesis("2026-01-01T00:00:00Z")["app_state"]
    with_params = []
    for module in MODULES:
        source = sys.modules[f"gridmint.chain.{module.name}"]
        params = getattr(source, "Params", None)
        if params is None:
            continue
        with_params.append(module.name)
        names = [field.name for field in dataclasses.fields(params)]
        assert sorted(source.BOUNDS) == sorted(names), module.name
        assert all(low <= getattr(params(), name) <= high for name, (low, high) in source.BOUNDS.items()), module.name
        assert f"{module.name}/params".encode() == source.PARAMS_KEY
        in_force = gen.modules[module.name].params
        assert isinstance(in_force, params), module.name
        answer = app.query(f"/{module.name}/params")
        assert answer.code == 0 and decode(answer.value) == dataclasses.asdict(in_force), module.name
        assert exported[module.name]["params"] == dataclasses.asdict(in_force), module.name
    assert "escrow" in with_params and len(with_params) == len(MODULES) - 1  # weights has no tunable of its own
