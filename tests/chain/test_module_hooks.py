"""What a pruned UID or a dissolved subnet leaves behind: each module deletes its own keys when subnets tells it
(``ModuleSpec.uid_freed``, ``ModuleSpec.subnet_dissolved``), in the app's module order, in the same block."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain import commitments, neurons
from gridmint.chain.app import MODULES
from gridmint.chain.commitments import MsgCommit
from gridmint.chain.errors import ChainError, lookup
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.module import BlockInfo, Context, ModuleSpec
from gridmint.chain.state import CommittedView, State
from gridmint.chain.store import Store
from gridmint.chain.subnets import MsgCreateSubnet, MsgDissolveSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.weights import MsgCommitWeights, MsgSetWeights
from tests.chain.incentive_network import Network, build, hot
from tests.support.chain import MINT, key, make_app

COMMITMENTS = {"commitments": {"params": {"retention_epochs": 8}}}


def keys(net: Network, prefix: bytes) -> list[bytes]:
    return [key for key, _ in CommittedView(net.app.store).scan(prefix)]


def uid_suffix(uid: int) -> bytes:
    return neurons.netuid_bytes(1) + uid.to_bytes(2, "big")


def full_subnet(tmp_path: Path, **hyper: int) -> Network:
    """Subnet 1 full at three validators; v3 set no weights before the last epoch, so it has the lowest emission
    and is the one a new registration prunes. Since then v3 has set weights, committed weights, and made two
    commitments; v1 made one."""
    net = build(tmp_path, {"v1": 300 * MINT, "v2": 200 * MINT, "v3": 100 * MINT}, (), extra_accounts=("newbie",),
                sections=COMMITMENTS, max_uids=3, **hyper)
    net.ok(hot("v1"), MsgSetWeights(1, [net.uid("v2")], [65_535]))
    net.ok(hot("v2"), MsgSetWeights(1, [net.uid("v1")], [65_535]))
    net.until_epoch()
    net.ok(hot("v3"), MsgSetWeights(1, [net.uid("v1")], [65_535]))
    net.ok(hot("v3"), MsgCommit(1, b"\x01" * 32, b"v3"))
    net.ok(hot("v1"), MsgCommit(1, b"\x02" * 32, b"v1"))
    net.ok("owner", MsgSetHyperparam(1, "commit_reveal", 1))
    net.ok(hot("v3"), MsgCommitWeights(1, b"\x07" * 32))
    net.until_epoch()
    net.ok(hot("v3"), MsgCommit(1, b"\x03" * 32, b"v3 again"))
    return net


def test_a_pruned_uid_takes_its_weights_commit_and_commitments_with_it(tmp_path: Path) -> None:
    net = full_subnet(tmp_path)
    v3, v3_hotkey = net.uid("v3"), key(hot("v3")).address
    assert keys(net, b"weights/w/" + uid_suffix(v3)) and keys(net, b"weights/commit/" + uid_suffix(v3))
    v3_commitments = keys(net, b"commitments/c/" + neurons.netuid_bytes(1) + v3_hotkey)
    assert len(v3_commitments) == 2
    v1_commitments = keys(net, b"commitments/c/" + neurons.netuid_bytes(1) + key(hot("v1")).address)
    other_weights = [row for row in keys(net, b"weights/w/") if row != b"weights/w/" + uid_suffix(v3)]
    net.ok("newbie", MsgRegister(1, key(hot("newbie")).address, 0))
    assert net.uid("newbie") == v3
    assert keys(net, b"weights/w/" + uid_suffix(v3)) == [] and keys(net, b"weights/commit/" + uid_suffix(v3)) == []
    assert keys(net, b"commitments/c/" + neurons.netuid_bytes(1) + v3_hotkey) == []
    # Only v1's commitment is left, under its key and in the block index (the invariants check the index).
    assert keys(net, b"commitments/c/") == v1_commitments and len(keys(net, b"commitments/block/")) == 1
    assert keys(net, b"weights/w/") == other_weights and len(other_weights) == 2
    assert net.app.check_invariants() == []


def test_a_refused_registration_frees_nothing(tmp_path: Path) -> None:
    """Every UID immune: the registration is refused with subnet_full and every module's keys stay as they were."""
    net = full_subnet(tmp_path)
    net.ok("owner", MsgSetHyperparam(1, "immunity_period", 1_000))
    before = keys(net, b"weights/") + keys(net, b"commitments/")
    net.send("newbie", MsgRegister(1, key(hot("newbie")).address, 0))
    (result,) = net.commit()["newbie"]
    kind = lookup(result.codespace, result.code)
    assert kind is not None and kind.name == "subnet_full", result.log
    assert keys(net, b"weights/") + keys(net, b"commitments/") == before
    assert net.app.check_invariants() == []


def test_a_dissolved_subnet_takes_every_weight_commit_and_commitment_with_it(tmp_path: Path) -> None:
    net = full_subnet(tmp_path)
    assert keys(net, b"weights/w/") and keys(net, b"weights/commit/") and keys(net, b"commitments/c/")
    net.ok("owner", MsgDissolveSubnet(1))
    assert keys(net, b"weights/") == [] and keys(net, b"commitments/") == [b"commitments/params"]
    assert net.app.check_invariants() == []


def test_dissolving_one_subnet_leaves_another_subnets_commitments(tmp_path: Path) -> None:
    net = full_subnet(tmp_path)
    net.ok("v1", MsgCreateSubnet("embedding", "second"))
    net.ok("v1", MsgRegister(2, key(hot("v1")).address, 0))
    net.ok(hot("v1"), MsgCommit(2, b"\x09" * 32, b"on two"))
    net.ok("owner", MsgDissolveSubnet(1))
    left = keys(net, b"commitments/c/")
    assert left == [b"commitments/c/" + neurons.netuid_bytes(2) + key(hot("v1")).address + (0).to_bytes(8, "big")]
    assert net.app.check_invariants() == []


def test_hooks_run_in_module_order_and_only_where_declared(tmp_path: Path) -> None:
    state = State(CommittedView(Store(tmp_path / "s.sqlite")))
    calls: list[tuple[str, object]] = []

    def freed(name: str):  # type: ignore[no-untyped-def]
        return lambda seen, netuid, uid, hotkey: calls.append((name, (seen is state, netuid, uid, hotkey)))

    def dissolved(name: str):  # type: ignore[no-untyped-def]
        return lambda seen, netuid: calls.append((name, (seen is state, netuid)))

    modules = (ModuleSpec("a", uid_freed=freed("a")), ModuleSpec("none"),
               ModuleSpec("b", uid_freed=freed("b"), subnet_dissolved=dissolved("b")),
               ModuleSpec("c", subnet_dissolved=dissolved("c")))
    ctx = Context(state, BlockInfo(1, 0, b"", "test"), modules=modules)
    ctx.notify_uid_freed(3, 7, b"h" * 20)
    ctx.notify_subnet_dissolved(3)
    freed_args, dissolved_args = (True, 3, 7, b"h" * 20), (True, 3)
    assert calls == [("a", freed_args), ("b", freed_args), ("b", dissolved_args), ("c", dissolved_args)]


def test_the_chain_clears_uids_and_subnets_through_weights_and_commitments() -> None:
    """Which modules keep per-UID or per-subnet state of their own, in the order their hooks run."""
    assert [m.name for m in MODULES if m.uid_freed] == ["weights", "commitments"]
    assert [m.name for m in MODULES if m.subnet_dissolved] == ["weights", "commitments"]


def test_a_dissolved_subnets_commitments_go_at_most_cleared_per_block_a_block(tmp_path: Path) -> None:
    """Dissolving queues the subnet; end_block deletes ``cleared_per_block`` of its commitments per block (the
    dissolving block included), and the subnet leaves the queue once none is left. The queue is exported."""
    sections = {"commitments": {"params": {"retention_epochs": 8, "cleared_per_block": 2}}}
    net = build(tmp_path, {"v1": 300 * MINT, "v2": 200 * MINT}, (), sections=sections)
    for _ in range(2):
        net.ok(hot("v1"), MsgCommit(1, b"\x01" * 32, b""))
        net.ok(hot("v2"), MsgCommit(1, b"\x02" * 32, b""))
        net.until_epoch()
    assert len(keys(net, b"commitments/c/")) == 4
    net.ok("owner", MsgDissolveSubnet(1))
    assert len(keys(net, b"commitments/c/")) == 2 and keys(net, b"commitments/dissolved/") == [
        b"commitments/dissolved/" + neurons.netuid_bytes(1)]
    assert net.app.check_invariants() == []
    section = net.app.export_genesis("2026-01-01T00:00:00Z")["app_state"]["commitments"]
    assert section["dissolved"] == [1] and len(section["commitments"]) == 2
    assert commitments.validate_genesis(section).dissolved == (1,)
    net.block()
    assert keys(net, b"commitments/c/") == [] and keys(net, b"commitments/block/") == []
    assert keys(net, b"commitments/dissolved/") == []
    assert "dissolved" not in net.app.export_genesis("2026-01-01T00:00:00Z")["app_state"]["commitments"]
    assert net.app.check_invariants() == []


@pytest.mark.parametrize(("dissolved", "words"), [([2, 1], "increasing order"), ([1, 1], "increasing order"),
                                                  (["1"], "dissolved[0]"), ([70_000], "dissolved[0]"),
                                                  (7, "a list of netuids")])
def test_a_bad_dissolved_queue_in_genesis_is_refused(dissolved: object, words: str) -> None:
    with pytest.raises(ChainError) as refused:
        commitments.validate_genesis({"dissolved": dissolved})
    assert refused.value.kind.name == "invalid_genesis" and words in refused.value.message


def test_a_chain_restarted_from_an_export_mid_clearing_agrees_with_the_one_that_ran_on(tmp_path: Path) -> None:
    """Two nodes must agree on every app hash: one that goes on clearing a dissolved subnet's queue, and one
    started from the export taken halfway (the queue and the rest of the commitments in its genesis), given the
    same blocks."""
    sections = {"commitments": {"params": {"retention_epochs": 8, "cleared_per_block": 1}}}
    (tmp_path / "ran").mkdir()
    net = build(tmp_path / "ran", {"v1": 300 * MINT, "v2": 200 * MINT}, (), sections=sections)
    for _ in range(2):
        net.ok(hot("v1"), MsgCommit(1, b"\x01" * 32, b""))
        net.ok(hot("v2"), MsgCommit(1, b"\x02" * 32, b""))
        net.until_epoch()
    net.ok("owner", MsgDissolveSubnet(1))
    assert len(keys(net, b"commitments/c/")) == 3 and keys(net, b"commitments/dissolved/")
    document = net.app.export_genesis("2026-01-01T00:00:00Z")
    (tmp_path / "restarted").mkdir()
    restarted = make_app(tmp_path / "restarted", validate_genesis(document, MODULES))
    hashes: dict[str, list[bytes]] = {"ran": [], "restarted": []}
    for step in range(4):  # three blocks clear the queue, one more runs with it empty
        height, time_ns = net.height + 1 + step, (1_800_000_000 + step) * 10**9
        for name, app in (("ran", net.app), ("restarted", restarted)):
            hashes[name].append(app.finalize_block([], height, time_ns, key("authority-0").address).app_hash)
            app.commit()
    assert hashes["ran"] == hashes["restarted"]
    for app in (net.app, restarted):
        assert [k for k, _ in CommittedView(app.store).scan(b"commitments/")] == [b"commitments/params"]
        assert app.check_invariants() == []
