"""commitments: one per hotkey per epoch, never revised, history bounded, queries by subnet, hotkey and height;
every refusal coded and leaving the module's state byte-identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import codec, commitments
from gridmint.chain.app import MODULES
from gridmint.chain.commitments import MsgCommit
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import INVALID_GENESIS, ChainError, lookup
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.state import CommittedView
from gridmint.chain.tx import Msg
from tests.chain.incentive_network import Network, build, hot
from tests.support.chain import MINT, assert_refused, key, make_app

ROOT = b"\x11" * 32


@pytest.fixture
def net(tmp_path: Path) -> Network:
    return build(tmp_path, {"v1": 500 * MINT}, ("m1",), extra_accounts=("outsider",),
                 sections={"commitments": {"params": {"max_data_bytes": 16, "retention_epochs": 3}}})


def query(net: Network, path: str, data: bytes = b"", height: int = 0) -> Any:
    result = net.app.query(path, data, height)
    assert result.code == 0, result.log
    return codec.decode(result.value)


def module_state(net: Network) -> list[tuple[bytes, bytes]]:
    return list(CommittedView(net.app.store).scan(b"commitments/"))


def refuse(net: Network, signer: str, message: Msg, expected: str) -> None:
    assert_refused(net, signer, message, expected, lambda: module_state(net))


def test_a_validator_commits_a_root_and_anyone_reads_it_by_hotkey_epoch_subnet_and_height(net: Network) -> None:
    validator = key(hot("v1")).address
    epoch = net.subnet()["epoch"]
    net.ok(hot("v1"), MsgCommit(1, ROOT, b"answers:42"))
    height = net.app.store.height
    hotkey = query(net, f"/commitments/hotkey/1/{format_address(key(hot('v1')).address)}")
    expected = {"netuid": 1, "hotkey": format_address(key(hot("v1")).address), "epoch": epoch, "hash": ROOT,
                "data": b"answers:42", "block": height}
    assert hotkey == [expected]
    assert query(net, f"/commitments/epoch/1/{format_address(key(hot('v1')).address)}/{epoch}") == expected
    assert query(net, f"/commitments/epoch/1/{format_address(key(hot('v1')).address)}/{epoch + 1}") is None
    assert query(net, f"/commitments/block/1/{height}") == [expected]
    assert query(net, f"/commitments/block/1/{height - 1}") == []
    assert query(net, "/commitments/subnet/1") == [expected]
    assert query(net, "/commitments/subnet/1", b"page=1") == []
    assert commitments.get_commitment(CommittedView(net.app.store), 1, validator, epoch)["hash"] == ROOT
    assert net.app.check_invariants() == []


def test_a_miner_commits_too_and_each_hotkey_commits_once_per_epoch(net: Network) -> None:
    net.ok(hot("m1"), MsgCommit(1, b"\x22" * 32, b""))
    net.ok(hot("v1"), MsgCommit(1, ROOT, b""))
    refuse(net, hot("v1"), MsgCommit(1, b"\x33" * 32, b""), "already_committed")  # no revision, same epoch
    net.until_epoch()
    net.ok(hot("v1"), MsgCommit(1, b"\x33" * 32, b""))  # the next epoch is a fresh one
    hashes = [entry["hash"] for entry in query(net, f"/commitments/hotkey/1/{format_address(key(hot('v1')).address)}")]
    assert hashes == [ROOT, b"\x33" * 32]


def test_bad_commitments_are_refused_with_a_code_and_change_nothing(net: Network) -> None:
    refuse(net, "outsider", MsgCommit(1, ROOT, b""), "not_registered")
    refuse(net, hot("v1"), MsgCommit(9, ROOT, b""), "subnet_not_found")
    refuse(net, hot("v1"), MsgCommit(1, ROOT, b"x" * 17), "data_too_long")  # params allow 16 here
    # Past the absolute bound, the field check refuses before any handler: invalid_field.
    refuse(net, hot("v1"), MsgCommit(1, ROOT, b"x" * (commitments.ABSOLUTE_MAX_DATA_BYTES + 1)), "invalid_field")


@pytest.mark.parametrize("path", ["/commitments/hotkey/1", "/commitments/hotkey/99999/gm1x",
                                  "/commitments/block/1/-1", "/commitments/epoch/1/gm1q/1",
                                  "/commitments/subnet/01", "/commitments/params/x"])
def test_bad_queries_are_coded_refusals(net: Network, path: str) -> None:
    result = net.app.query(path)
    assert result.code != 0 and lookup(result.codespace, result.code) is not None and result.log


def test_history_is_bounded_to_the_retention_window(net: Network) -> None:
    """Retention 3: after six epochs of commits the hotkey keeps three, and the block index follows."""
    for _ in range(6):
        net.ok(hot("v1"), MsgCommit(1, ROOT, b""))
        net.until_epoch()
    kept = query(net, f"/commitments/hotkey/1/{format_address(key(hot('v1')).address)}")
    now = net.subnet()["epoch"]
    assert [entry["epoch"] for entry in kept] == [now - 3, now - 2, now - 1]
    assert len(list(CommittedView(net.app.store).scan(commitments.BLOCK_PREFIX))) == 3
    assert net.app.check_invariants() == []


def test_a_long_absence_prunes_two_a_commit_and_never_exceeds_retention(net: Network) -> None:
    for _ in range(3):
        net.ok(hot("v1"), MsgCommit(1, ROOT, b""))
        net.until_epoch()
    for _ in range(5):  # all three expire
        net.until_epoch()
    net.ok(hot("v1"), MsgCommit(1, ROOT, b""))
    assert len(query(net, f"/commitments/hotkey/1/{format_address(key(hot('v1')).address)}")) == 2  # 3 - 2 pruned + 1
    net.until_epoch()
    net.ok(hot("v1"), MsgCommit(1, ROOT, b""))
    # The last expired one goes, the new one comes.
    assert len(query(net, f"/commitments/hotkey/1/{format_address(key(hot('v1')).address)}")) == 2
    assert net.app.check_invariants() == []


def test_genesis_exports_and_imports_every_commitment(net: Network) -> None:
    net.ok(hot("v1"), MsgCommit(1, ROOT, b"\x00\xff"))
    exported = net.app.export_genesis("2026-01-01T00:00:00Z")
    section = commitments.export_genesis(CommittedView(net.app.store))
    assert section["commitments"][0]["hash"] == ROOT.hex() and section["commitments"][0]["data"] == "00ff"
    again = commitments.validate_genesis(section)
    assert again.params == commitments.Params(max_data_bytes=16, retention_epochs=3)
    assert len(again.commitments) == 1
    assert exported["app_state"]["commitments"] == section


@pytest.mark.parametrize(("change", "words"), [
    ({"hash": "zz"}, "not hexadecimal"),
    ({"hash": "11" * 31}, "32 bytes"),
    ({"hotkey": 7}, "address"),
    ({"epoch": -1}, "whole number"),
    ({"data": "00" * 17}, "max_data_bytes"),
])
def test_bad_genesis_entries_are_refused_with_the_field_named(change: dict[str, Any], words: str) -> None:
    entry = {"netuid": 1, "hotkey": format_address(key("x").address), "epoch": 0, "hash": "11" * 32, "data": "",
             "block": 1, **change}
    doc = {"chain_id": "gridmint-test", "app_state": {"commitments": {"params": {"max_data_bytes": 16},
                                                                      "commitments": [entry]}}}
    with pytest.raises(ChainError) as refused:
        validate_genesis(doc, (commitments.MODULE,))
    assert words in str(refused.value) and "commitments.commitments[0]" in str(refused.value)


@pytest.mark.parametrize(("section", "words"), [
    # Queued for clearing before any subnet took the netuid: the queue would delete the new subnet's commitments.
    ({"dissolved": [3]}, "subnet 3 is queued as dissolved but no subnet above"),
    # Commitments of a hotkey that holds no UID there: a later registrant would find a history it never made, and
    # nothing would ever delete them.
    ({"commitments": [{"netuid": 1, "hotkey": format_address(key("stranger").address), "epoch": 0,
                       "hash": "11" * 32, "data": "", "block": 1}]}, "without a UID there"),
])
def test_a_genesis_whose_commitments_no_subnet_owns_is_refused(net: Network, tmp_path: Path,
                                                               section: dict[str, Any], words: str) -> None:
    """An exported chain (which passes) with the section changed: init_chain's invariant check refuses it."""
    document = net.app.export_genesis("2026-01-01T00:00:00Z")
    document["app_state"]["commitments"].update(section)
    (tmp_path / "again").mkdir()
    with pytest.raises(ChainError) as refused:
        make_app(tmp_path / "again", validate_genesis(document, MODULES))
    assert refused.value.kind is INVALID_GENESIS and words in refused.value.message
