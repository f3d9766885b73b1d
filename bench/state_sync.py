"""Time for a new node's app to reach the head of a chain: by state sync (restoring a snapshot) against block replay.

A chain of ``--blocks`` blocks with a busy subnet (``--uids`` UIDs, ``--validators`` of them staked validators that
set weights on every miner once per epoch, each in its own block of the epoch) is built once in this process,
its blocks recorded. The serving node takes a snapshot of the head (node/snapshots.py; node-local work done on
its own schedule, printed but not counted). Then two fresh nodes reach the head, in the same run:

- replay: ``finalize_block`` and ``commit`` of every recorded block, each one's app hash checked against the one
  the chain recorded (what block sync makes a new node's app do, without CometBFT's own share);
- state sync: ``list_snapshots`` on the server, ``offer_snapshot``, then ``load_snapshot_chunk`` on the server and
  ``apply_snapshot_chunk`` on the new node for each chunk, then ``info``, which must give the head's height and
  app hash (the app's whole share of CometBFT's state sync; CometBFT adds its peer discovery, ``discovery_time``,
  15 s by default, and the light client's few header checks).

Both go through the ABCI server's protobuf encoding and decoding, as under CometBFT. Only a node that reached the
head with the chain's app hash counts; both then run one more block and must agree.

    .venv/bin/python bench/state_sync.py [--blocks 5000] [--uids 1024] [--validators 64] [--tempo 20]

The last line is JSON: {"statesync_s", "replay_s", "ratio", ...}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from busy_subnet import CHAIN_ID, BusySubnet, sign_next
from gridmint.chain.app import MODULES, App
from gridmint.chain.crypto import PrivateKey
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.store import Store
from gridmint.chain.tx import Msg
from gridmint.node.abci import messages
from gridmint.node.abci.proto import decode_oneof, encode_oneof
from gridmint.node.abci.server import AbciServer
from gridmint.node.snapshots import SnapshotStore

START_NS = 1_767_225_600 * 10**9


def call(server: AbciServer, kind: str, request: dict[str, Any]) -> dict[str, Any]:
    """One ABCI request through the server's wire path: encoded, answered, the answer decoded."""
    answer, _ = server._respond(encode_oneof(kind, request, messages.REQUESTS))
    case, fields = decode_oneof(answer, messages.RESPONSES)
    if case != kind:
        raise SystemExit(f"ABCI {kind} answered with {case}: {fields}")
    return fields


def block_request(txs: list[bytes], height: int) -> dict[str, Any]:
    moment = START_NS + height * 10**9
    return {"txs": txs, "hash": b"", "height": height, "time": {"seconds": moment // 10**9, "nanos": 0},
            "next_validators_hash": b"", "proposer_address": b"\x01" * 20}


class Source:
    """The chain being built: its app behind an ABCI server, every block recorded with its app hash."""

    def __init__(self, workdir: Path, genesis: dict[str, Any]) -> None:
        self.app = App(Store(workdir / "source.sqlite"))
        self.snapshots = SnapshotStore(workdir / "snapshots", interval=0)
        self.server = AbciServer(self.app, self.snapshots)
        call(self.server, "init_chain", init_request(genesis))
        self.blocks: list[tuple[list[bytes], bytes]] = []
        self.nonces: dict[bytes, int] = {}

    @property
    def height(self) -> int:
        return len(self.blocks)

    def tx(self, signer: PrivateKey, *msgs: Msg) -> bytes:
        return sign_next(self.app.store, self.nonces, signer, *msgs)

    def fitting(self, txs: list[bytes]) -> int:
        return len(self.app.fitting(txs, self.height + 1).txs)

    def block(self, txs: list[bytes]) -> None:
        height = len(self.blocks) + 1
        result = call(self.server, "finalize_block", block_request(txs, height))
        failed = [r for r in result["tx_results"] if r["code"] != 0]
        if failed:
            raise SystemExit(f"block {height}: {len(failed)} transactions failed, e.g. {failed[0]['log']}")
        call(self.server, "commit", {})
        self.blocks.append((txs, result["app_hash"]))


def init_request(document: dict[str, Any]) -> dict[str, Any]:
    return {"time": {"seconds": START_NS // 10**9, "nanos": 0}, "chain_id": CHAIN_ID, "validators": [],
            "app_state_bytes": json.dumps(document["app_state"]).encode(), "initial_height": 1}


def build(args: argparse.Namespace, workdir: Path) -> tuple[Source, dict[str, Any]]:
    subnet = BusySubnet("state_sync", args.uids, args.validators, args.tempo, args.seed)
    document = subnet.genesis_document()
    validate_genesis(document, MODULES)
    source = Source(workdir, document)
    subnet.set_up(source)
    while source.height < args.blocks:
        subnet.weights_block(source)
        if source.height % 1_000 == 0:
            print(f"built block {source.height}", flush=True)
    return source, document


def replay(source: Source, document: dict[str, Any], workdir: Path) -> tuple[float, AbciServer]:
    server = AbciServer(App(Store(workdir / "replay.sqlite")))
    started = time.perf_counter()
    call(server, "init_chain", init_request(document))
    for height, (txs, app_hash) in enumerate(source.blocks, start=1):
        if call(server, "finalize_block", block_request(txs, height))["app_hash"] != app_hash:
            raise SystemExit(f"replay: block {height} gives another app hash than the chain's")
        call(server, "commit", {})
    elapsed = time.perf_counter() - started
    return elapsed, server


def state_sync(source: Source, workdir: Path) -> tuple[float, AbciServer, int]:
    server = AbciServer(App(Store(workdir / "synced.sqlite")))
    started = time.perf_counter()
    offered = call(source.server, "list_snapshots", {})["snapshots"][0]
    head_hash = source.blocks[offered["height"] - 1][1]  # what the light client reads from header height + 1
    if call(server, "offer_snapshot", {"snapshot": offered, "app_hash": head_hash})["result"] != \
            messages.OFFER_ACCEPT:
        raise SystemExit("state sync: the snapshot was refused")
    for index in range(offered["chunks"]):
        chunk = call(source.server, "load_snapshot_chunk", {"height": offered["height"], "format": offered["format"],
                                                            "chunk": index})["chunk"]
        if call(server, "apply_snapshot_chunk", {"index": index, "chunk": chunk, "sender": "server"})["result"] != \
                messages.CHUNK_ACCEPT:
            raise SystemExit(f"state sync: chunk {index} was refused")
    info = call(server, "info", {"version": "0.38.25", "abci_version": "2.0.0"})
    elapsed = time.perf_counter() - started
    if (info["last_block_height"], info["last_block_app_hash"]) != (len(source.blocks), source.blocks[-1][1]):
        raise SystemExit("state sync: the restored node is not at the head with the chain's app hash")
    return elapsed, server, int(offered["chunks"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=5_000)
    parser.add_argument("--uids", type=int, default=1_024)
    parser.add_argument("--validators", type=int, default=64)
    parser.add_argument("--tempo", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gridmint-state-sync-"))
    try:
        started = time.perf_counter()
        source, document = build(args, workdir)
        print(f"built {len(source.blocks)} blocks ({args.uids} UIDs, {args.validators} validators, tempo "
              f"{args.tempo}) in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        snapshot = source.snapshots.take(source.app.store, source.app.store.height)
        snapshot_s = time.perf_counter() - started
        state_bytes = sum(len(k) + len(v) for k, v in source.app.store.all_pairs())
        print(f"snapshot of height {snapshot.height}: {snapshot.chunks} chunks, {state_bytes / 1e6:.1f} MB of state, "
              f"taken in {snapshot_s:.2f} s (by the serving node, on its own schedule; not counted)", flush=True)
        replay_s, replayed = replay(source, document, workdir)
        print(f"replay: {len(source.blocks)} blocks to the head in {replay_s:.2f} s", flush=True)
        statesync_s, synced, chunks = state_sync(source, workdir)
        print(f"state sync: {chunks} chunks to the head in {statesync_s:.2f} s", flush=True)
        # Both nodes run the next block alike.
        following = len(source.blocks) + 1
        hashes = {call(node, "finalize_block", block_request([], following))["app_hash"] for node in (replayed, synced)}
        if len(hashes) != 1:
            raise SystemExit("the replayed and the state-synced node disagree on the next block")
        ratio = statesync_s / replay_s
        print(f"state sync takes {ratio:.3f} of replay's time (goal: 0.1 or less)")
        print(json.dumps({"statesync_s": round(statesync_s, 3), "replay_s": round(replay_s, 3),
                          "ratio": round(ratio, 4), "blocks": len(source.blocks), "uids": args.uids,
                          "validators": args.validators, "tempo": args.tempo, "chunks": chunks,
                          "state_bytes": state_bytes, "snapshot_take_s": round(snapshot_s, 3)}))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
