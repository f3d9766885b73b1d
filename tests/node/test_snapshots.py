"""State sync through the ABCI snapshot calls: a node's snapshot restored into a fresh store gives the same height,
app hash and answers, and the next block gives both nodes the same app hash; a corrupted chunk is fetched again
from another peer, a snapshot that does not give the trusted app hash is refused, and no refusal writes anything
or ends in an ``exception``."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import codec
from gridmint.chain.app import App
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.chain.store import Store
from gridmint.node import snapshots
from gridmint.node.abci import messages
from gridmint.node.abci.proto import decode_oneof, encode_oneof
from gridmint.node.abci.server import AbciApplication, AbciServer
from gridmint.node.snapshots import Snapshot, SnapshotStore
from tests.support.chain import Chain, key, make_app, signed

INFO = {"version": "0.38.25", "block_version": 11, "p2p_version": 8, "abci_version": "2.0.0"}
NAMES = ("alice", "bob", "carol")


def _busy_app(folder: Path, blocks: int = 6) -> tuple[App, Chain]:
    """An app with a few blocks of transfers to many fresh accounts (enough keys for several small chunks)."""
    from tests.support.chain import genesis

    folder.mkdir(parents=True, exist_ok=True)
    app = make_app(folder, genesis(accounts=NAMES))
    chain = Chain(app)
    nonces = dict.fromkeys(NAMES, 0)
    for block in range(blocks):
        txs = []
        for name in NAMES:
            nonces[name] += 1
            sends = [MsgSend(key(f"r{block}-{name}-{i}").address, 1_000 + i) for i in range(16)]
            txs.append(signed(key(name), nonces[name], *sends))
        assert all(result.code == 0 for result in chain.block(*txs))
    return app, chain


def _fresh(tmp_path: Path, name: str = "joiner") -> AbciApplication:
    (tmp_path / name).mkdir()
    return AbciApplication(App(Store(tmp_path / name / "state.sqlite")))


def _staging(application: AbciApplication) -> Path:
    return Path(f"{application.app.store.path}.restore")


def _chunks(store: SnapshotStore, snapshot: Snapshot) -> list[bytes]:
    return [store.load_chunk(snapshot.height, snapshot.format, i) for i in range(snapshot.chunks)]


def _offer(application: AbciApplication, snapshot: Snapshot, app_hash: bytes) -> int:
    answer = application.handle("offer_snapshot", {"snapshot": snapshot.to_abci(), "app_hash": app_hash})
    return int(answer["result"])


def _apply(application: AbciApplication, index: int, chunk: bytes, sender: str = "peer-a") -> dict[str, Any]:
    return application.handle("apply_snapshot_chunk", {"index": index, "chunk": chunk, "sender": sender})


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "CHUNK_RAW_BYTES", 2_048)


@pytest.fixture
def served(tmp_path: Path, small_chunks: None) -> tuple[App, Chain, SnapshotStore, Snapshot]:
    app, chain = _busy_app(tmp_path / "source")
    store = SnapshotStore(tmp_path / "source" / "snapshots", interval=0)
    snapshot = store.take(app.store, app.store.height)
    assert snapshot.chunks >= 3
    return app, chain, store, snapshot


def test_a_restored_snapshot_gives_the_same_app_hash_answers_and_next_block(
        tmp_path: Path, served: tuple[App, Chain, SnapshotStore, Snapshot]) -> None:
    app, chain, store, snapshot = served
    source = AbciApplication(app, store)
    listed = source.handle("list_snapshots", {})["snapshots"]
    assert [Snapshot.from_abci(entry) for entry in listed] == [snapshot]
    joiner = _fresh(tmp_path)
    assert _offer(joiner, snapshot, app.store.app_hash) == messages.OFFER_ACCEPT
    for index in range(snapshot.chunks):
        request = {"height": snapshot.height, "format": snapshot.format, "chunk": index}
        chunk = source.handle("load_snapshot_chunk", request)["chunk"]
        assert _apply(joiner, index, chunk) == {"result": messages.CHUNK_ACCEPT}
    info = joiner.handle("info", INFO)
    assert (info["last_block_height"], info["last_block_app_hash"]) == (app.store.height, app.store.app_hash)
    assert joiner.app.store.recompute_digest().tobytes() == app.store.lanes.tobytes()
    for path in ("/bank/balance/" + format_address(key("alice").address), "/app/info", "/authority/members"):
        ours, theirs = joiner.app.query(path), app.query(path)
        assert ours.code == 0 and ours.value == theirs.value, path
    at_snapshot = joiner.app.query("/bank/balance/" + format_address(key("bob").address), height=snapshot.height)
    assert at_snapshot.code == 0 and codec.decode(at_snapshot.value) == codec.decode(app.query(
        "/bank/balance/" + format_address(key("bob").address), height=snapshot.height).value)
    # The restored node runs the next block exactly as the node that never stopped.
    tx = signed(key("alice"), 7, MsgSend(key("bob").address, 5))
    assert joiner.app.check_tx(tx).ok
    expected = app.finalize_block([tx], snapshot.height + 1, chain.time_ns + 10**9, key("authority-0").address)
    got = joiner.app.finalize_block([tx], snapshot.height + 1, chain.time_ns + 10**9, key("authority-0").address)
    assert got.app_hash == expected.app_hash and got.tx_results[0].code == 0
    assert app.commit() == joiner.app.commit() == 0
    assert joiner.app.store.app_hash == app.store.app_hash


def test_a_corrupted_chunk_is_fetched_again_from_another_peer_and_nothing_is_written(
        tmp_path: Path, served: tuple[App, Chain, SnapshotStore, Snapshot]) -> None:
    app, _, store, snapshot = served
    chunks = _chunks(store, snapshot)
    joiner = _fresh(tmp_path)
    assert _offer(joiner, snapshot, app.store.app_hash) == messages.OFFER_ACCEPT
    assert _apply(joiner, 0, chunks[0])["result"] == messages.CHUNK_ACCEPT
    corrupted = bytearray(chunks[1])
    corrupted[len(corrupted) // 2] ^= 0x40
    for bad in (bytes(corrupted), b"", chunks[2]):
        answer = _apply(joiner, 1, bad, sender="liar")
        assert answer == {"result": messages.CHUNK_RETRY, "refetch_chunks": [1], "reject_senders": ["liar"]}
        assert joiner.app.store.height == 0 and list(joiner.app.store.all_pairs()) == []
        assert _staging(joiner).exists()  # the restore goes on: chunk 0 is kept
    for index in range(1, snapshot.chunks):
        assert _apply(joiner, index, chunks[index], sender="honest")["result"] == messages.CHUNK_ACCEPT
    assert joiner.app.store.app_hash == app.store.app_hash


def test_a_snapshot_that_misses_the_trusted_app_hash_is_rejected_and_writes_nothing(
        tmp_path: Path, served: tuple[App, Chain, SnapshotStore, Snapshot]) -> None:
    app, _, store, snapshot = served
    joiner = _fresh(tmp_path)
    wrong = hashlib.sha256(b"another state").digest()
    assert _offer(joiner, snapshot, wrong) == messages.OFFER_ACCEPT  # only the chunks can tell
    chunks = _chunks(store, snapshot)
    for index in range(snapshot.chunks - 1):
        assert _apply(joiner, index, chunks[index])["result"] == messages.CHUNK_ACCEPT
    assert _apply(joiner, snapshot.chunks - 1, chunks[-1]) == {"result": messages.CHUNK_REJECT_SNAPSHOT}
    assert joiner.app.store.height == 0 and list(joiner.app.store.all_pairs()) == []
    assert not _staging(joiner).exists()  # the pairs waited on disk, and are gone with the snapshot
    assert joiner.handle("info", INFO)["last_block_height"] == 0
    # CometBFT may then offer the same snapshot with the right hash (from another light block): it restores.
    assert _offer(joiner, snapshot, app.store.app_hash) == messages.OFFER_ACCEPT
    assert [_apply(joiner, i, c)["result"] for i, c in enumerate(chunks)] == [messages.CHUNK_ACCEPT] * len(chunks)
    assert joiner.app.store.app_hash == app.store.app_hash and not _staging(joiner).exists()


def _crafted(records: bytes, height: int = 5) -> tuple[Snapshot, list[bytes]]:
    """A snapshot whose metadata vouches for chunks a dishonest peer made (so only their content can be wrong)."""
    chunks = [records]
    metadata = b"".join(hashlib.sha256(chunk).digest() for chunk in chunks)
    return Snapshot(height, snapshots.SNAPSHOT_FORMAT, 1, hashlib.sha256(metadata).digest(), metadata), chunks


@pytest.mark.parametrize("chunk", [
    b"not zlib at all",
    zlib.compress(b"\x00\x00\x00\x05abc"),  # a key length past the end
    zlib.compress(b"\x00\x00\x00\x01b\x00\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x00\x00"),  # keys out of order
    zlib.compress(b"\x00" * (5 * 1024 * 1024)),  # inflates past the chunk bound
    zlib.compress(b"\x00\x00\x00\x01a\x00\x00\x00\x01x")[:-3],  # truncated stream
], ids=["not-zlib", "record-past-end", "keys-out-of-order", "inflates-too-far", "truncated"])
def test_a_snapshot_whose_chunks_cannot_be_read_is_rejected_never_a_crash(tmp_path: Path, chunk: bytes) -> None:
    joiner = _fresh(tmp_path)
    snapshot, chunks = _crafted(chunk)
    assert _offer(joiner, snapshot, bytes(32)) == messages.OFFER_ACCEPT
    assert _apply(joiner, 0, chunks[0]) == {"result": messages.CHUNK_REJECT_SNAPSHOT}
    assert joiner.app.store.height == 0 and list(joiner.app.store.all_pairs()) == []


def test_offers_the_node_cannot_restore_are_refused_with_the_right_result(
        tmp_path: Path, served: tuple[App, Chain, SnapshotStore, Snapshot]) -> None:
    app, _, _, snapshot = served
    joiner = _fresh(tmp_path)
    good_hash = app.store.app_hash
    refused = {
        "unknown format": ({**snapshot.to_abci(), "format": 2}, good_hash, messages.OFFER_REJECT_FORMAT),
        "hash not of metadata": ({**snapshot.to_abci(), "hash": bytes(32)}, good_hash, messages.OFFER_REJECT),
        "chunk count off": ({**snapshot.to_abci(), "chunks": snapshot.chunks + 1}, good_hash, messages.OFFER_REJECT),
        "height zero": ({**snapshot.to_abci(), "height": 0}, good_hash, messages.OFFER_REJECT),
        "no chunks": ({**snapshot.to_abci(), "chunks": 0, "metadata": b"",
                       "hash": hashlib.sha256(b"").digest()}, good_hash, messages.OFFER_REJECT),
        "short app hash": (snapshot.to_abci(), b"\x01", messages.OFFER_REJECT),
        "missing snapshot": (None, good_hash, messages.OFFER_REJECT_FORMAT),
    }
    for name, (offered, app_hash, result) in refused.items():
        answer = joiner.handle("offer_snapshot", {"snapshot": offered, "app_hash": app_hash})
        assert answer == {"result": result}, name
    # No snapshot accepted: a chunk is refused, and state sync is aborted rather than guessed at.
    assert _apply(joiner, 0, b"anything") == {"result": messages.CHUNK_ABORT}
    assert joiner.app.store.height == 0
    # A node that already has state never restores over it.
    source = AbciApplication(app)
    assert _offer(source, snapshot, good_hash) == messages.OFFER_ABORT
    with pytest.raises(ValueError, match="already holds"):
        app.store.restore(snapshot.height, [], app.store.lanes)


def test_chunks_out_of_order_restart_the_snapshot(
        tmp_path: Path, served: tuple[App, Chain, SnapshotStore, Snapshot]) -> None:
    app, _, store, snapshot = served
    joiner = _fresh(tmp_path)
    chunks = _chunks(store, snapshot)
    assert _offer(joiner, snapshot, app.store.app_hash) == messages.OFFER_ACCEPT
    assert _apply(joiner, 1, chunks[1]) == {"result": messages.CHUNK_RETRY_SNAPSHOT}
    assert joiner.app.store.height == 0


def test_snapshots_are_taken_every_interval_on_a_thread_and_the_newest_kept(tmp_path: Path,
                                                                            small_chunks: None) -> None:
    app, chain = _busy_app(tmp_path / "source", blocks=1)
    store = SnapshotStore(tmp_path / "snapshots", interval=3, keep=2)
    application = AbciApplication(app, store)
    for _ in range(10):
        chain.height += 1
        chain.time_ns += 10**9
        application.handle("finalize_block", {"txs": [], "hash": b"", "height": chain.height,
                                              "time": {"seconds": chain.time_ns // 10**9, "nanos": 0},
                                              "next_validators_hash": b"", "proposer_address": b""})
        application.handle("commit", {})
        store.wait()
    assert [s.height for s in store.list()] == [9, 6]  # 3 was pruned; 11 is not a multiple of 3
    assert store.load_chunk(3, snapshots.SNAPSHOT_FORMAT, 0) == b""  # gone: CometBFT asks another peer
    assert store.load_chunk(9, 7, 0) == b"" and store.load_chunk(9, snapshots.SNAPSHOT_FORMAT, 10**6) == b""
    # The snapshot of 9 holds the state of 9, although two more blocks were committed while it was written.
    joiner = _fresh(tmp_path)
    newest = store.list()[0]
    manifest_hash = bytes.fromhex(json.loads(
        (tmp_path / "snapshots" / "9" / "manifest.json").read_text())["app_hash"])
    assert _offer(joiner, newest, manifest_hash) == messages.OFFER_ACCEPT
    results = [_apply(joiner, i, c)["result"] for i, c in enumerate(_chunks(store, newest))]
    assert results == [messages.CHUNK_ACCEPT] * newest.chunks
    assert joiner.app.store.height == 9 and joiner.app.store.app_hash == manifest_hash
    assert app.store.height == 11


def test_a_retry_answer_reaches_the_wire_with_the_chunk_and_the_peer(tmp_path: Path) -> None:
    server = AbciServer(App(Store(tmp_path / "state.sqlite")))
    snapshot, _ = _crafted(zlib.compress(b""))
    offer = encode_oneof("offer_snapshot", {"snapshot": snapshot.to_abci(), "app_hash": bytes(32)},
                         messages.REQUESTS)
    answer, _ = server._respond(offer)
    assert decode_oneof(answer, messages.RESPONSES) == ("offer_snapshot", {"result": messages.OFFER_ACCEPT})
    apply = encode_oneof("apply_snapshot_chunk", {"index": 0, "chunk": b"junk", "sender": "abc123"},
                         messages.REQUESTS)
    answer, _ = server._respond(apply)
    assert decode_oneof(answer, messages.RESPONSES) == ("apply_snapshot_chunk", {
        "result": messages.CHUNK_RETRY, "refetch_chunks": [0], "reject_senders": ["abc123"]})
