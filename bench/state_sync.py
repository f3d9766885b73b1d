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
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gridmint.chain import fees
from gridmint.chain.app import MODULES, App
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.genesis import make_genesis_document, validate_genesis
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.state import BlockState
from gridmint.chain.store import Store
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.tx import Msg, TxBody, sign_tx
from gridmint.chain.weights import MsgSetWeights
from gridmint.node.abci import messages
from gridmint.node.abci.proto import decode_oneof, encode_oneof
from gridmint.node.abci.server import AbciServer
from gridmint.node.snapshots import SnapshotStore

CHAIN_ID = "gridmint-bench"
MINT = 10**9
FEE = 10_000
NETUID = 1
START_NS = 1_767_225_600 * 10**9


def private_key(label: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(b"state_sync " + label.encode()).digest())


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

    def tx(self, signer: PrivateKey, *msgs: Msg) -> bytes:
        self.nonces[signer.address] = nonce = self.nonces.get(signer.address, 0) + 1
        unsigned = TxBody(CHAIN_ID, signer.public_key, nonce, 0, msgs)
        required = fees.get_tx_cost(BlockState(self.app.store), unsigned).fee
        return sign_tx(TxBody(CHAIN_ID, signer.public_key, nonce, max(FEE, required), msgs), signer)

    def block(self, txs: list[bytes]) -> None:
        height = len(self.blocks) + 1
        result = call(self.server, "finalize_block", block_request(txs, height))
        failed = [r for r in result["tx_results"] if r["code"] != 0]
        if failed:
            raise SystemExit(f"block {height}: {len(failed)} transactions failed, e.g. {failed[0]['log']}")
        call(self.server, "commit", {})
        self.blocks.append((txs, result["app_hash"]))

    def blocks_of(self, txs: list[bytes]) -> None:
        while txs:
            fitting = len(self.app.fitting(txs, len(self.blocks) + 1).txs) or 1
            self.block(txs[:fitting])
            txs = txs[fitting:]


def init_request(document: dict[str, Any]) -> dict[str, Any]:
    return {"time": {"seconds": START_NS // 10**9, "nanos": 0}, "chain_id": CHAIN_ID, "validators": [],
            "app_state_bytes": json.dumps(document["app_state"]).encode(), "initial_height": 1}


def build(args: argparse.Namespace, workdir: Path) -> tuple[Source, dict[str, Any]]:
    owner, authority = private_key("owner"), private_key("authority")
    hotkeys = [private_key(f"hotkey {i}") for i in range(args.uids)]
    validators = hotkeys[:args.validators]
    balances = [(format_address(owner.address), 10**9 * MINT)] + [(format_address(k.address), 10**6 * MINT)
                                                                    for k in validators]
    document = make_genesis_document(CHAIN_ID, "2026-01-01T00:00:00Z", [("bench", authority.public_key)], balances,
                                     min_tx_fee=FEE)
    document["app_state"]["subnets"] = {"params": {"min_lock": MINT, "default_tempo": 360}}
    document["app_state"]["tx"]["max_tx_bytes"] = 32_768
    validate_genesis(document, MODULES)
    source = Source(workdir, document)
    params = {"max_uids": args.uids, "max_validators": args.validators, "tempo": args.tempo, "commit_reveal": 0,
              "weights_rate_limit": 0, "immunity_period": 0, "burn_initial": MINT // 1_000, "burn_max": MINT // 100}
    source.block([source.tx(owner, MsgCreateSubnet("text-generation", "busy subnet"))])
    source.block([source.tx(owner, *(MsgSetHyperparam(NETUID, name, value) for name, value in params.items()))])
    registrations = [MsgRegister(NETUID, k.address, 0) for k in hotkeys]
    source.blocks_of([source.tx(owner, *registrations[i:i + 4]) for i in range(0, len(registrations), 4)])
    stakes = [MsgAddStake(NETUID, k.address, (1_000 + 10 * i) * MINT) for i, k in enumerate(validators)]
    source.blocks_of([source.tx(owner, *stakes[i:i + 16]) for i in range(0, len(stakes), 16)])
    for _ in range(args.tempo):  # an epoch hands out the validator permits
        source.block([])
    rng = np.random.default_rng(args.seed)
    miner_uids = list(range(args.validators, args.uids))
    quality = rng.integers(1_000, 60_000, len(miner_uids))
    while len(source.blocks) < args.blocks:
        height = len(source.blocks) + 1
        txs = []
        for index, validator in enumerate(validators):
            if index % args.tempo == height % args.tempo:
                scores = np.clip(quality + rng.integers(-2_000, 2_000, len(miner_uids)), 1, 65_535)
                txs.append(source.tx(validator, MsgSetWeights(NETUID, miner_uids, [int(s) for s in scores])))
        source.block(txs)
        if height % 1_000 == 0:
            print(f"built block {height}", flush=True)
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
