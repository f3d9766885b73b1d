"""SIGKILL the devnode at random moments under a stream of transfers, at least ten times. Every transaction that
was reported committed is still there after each restart, the final app hash equals a replay of the block log
from genesis, and the node keeps producing blocks."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from pathlib import Path

import pytest

from gridmint.chain.app import MODULES, App
from gridmint.chain.bank import MsgSend
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.genesis import load_genesis
from gridmint.chain.store import Store
from gridmint.client.chain_client import ChainClient
from gridmint.node.blockstore import BlockStore
from tests.support.chain import key, signed
from tests.support.nodes import DevnodeProcess, write_data_dir
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SENDERS = tuple(f"sender-{i}" for i in range(6))
KILLS = 12


def stream_transfers(url: str, name: str, stop: threading.Event, reported: dict[str, int],
                     lock: threading.Lock, failures: list[str]) -> None:
    """Send transfers one after another with broadcast_tx_commit until the node dies or we are told to stop. A
    transfer the node executed and refused goes into ``failures`` (an assert in a thread would only be warned
    about by pytest), for the test to check."""
    with ChainClient(url, timeout=5) as client:
        try:
            nonce = client.nonce(format_address(key(name).address))
        except ChainError:
            return
        while not stop.is_set():
            nonce += 1
            try:
                outcome = client.broadcast_commit(signed(key(name), nonce, MsgSend(key("sink").address, 1_000)))
            except ChainError:
                return  # the node was killed under us: what was not reported is allowed to be lost
            with lock:
                if outcome.ok:
                    reported[outcome.hash] = outcome.height
                else:
                    failures.append(f"{name} nonce {nonce}: {outcome.log}")
                    return


def test_sigkill_under_load(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    write_data_dir(data_dir, accounts=SENDERS)
    node = DevnodeProcess(data_dir, block_time=0.05)
    reported: dict[str, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    rng = random.Random(20261123)
    for _ in range(KILLS):
        node.start()
        before = len(reported)
        stop = threading.Event()
        threads = [threading.Thread(target=stream_transfers, args=(node.url, name, stop, reported, lock, failures))
                   for name in SENDERS]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30  # on a loaded machine, wait for the stream to get going first
        while len(reported) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.8))  # then kill at a random moment under load
        node.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "a sender did not stop"
        assert failures == []
        assert len(reported) > before, "no transfer was committed in this round"
        node.start()
        with ChainClient(node.url) as client:  # everything reported so far survived this kill
            for tx_hash, height in sorted(reported.items()):
                assert int(client.tx(tx_hash)["height"]) == height
        node.kill()

    node.start()
    with ChainClient(node.url) as client:
        height = client.height()
        wait_for(lambda: client.height() >= height + 3, "three more blocks (the node stopped producing them)",
                 timeout_s=20, interval_s=0.05)
    node.stop()
    assert len(reported) >= 50

    # Replay the block log into a fresh app from genesis: it must reach the node's state exactly.
    blocks = BlockStore(data_dir / "blocks.sqlite")
    state = Store(data_dir / "state.sqlite")
    assert state.height == blocks.height
    replay = App(Store(tmp_path / "replay.sqlite"))
    replay.init_chain(load_genesis(data_dir / "genesis.json", MODULES))
    for height in range(1, blocks.height + 1):
        block, results = blocks.block(height), blocks.results(height)
        assert block is not None and results is not None
        result = replay.finalize_block(block.txs, height, block.header.time_ns, block.header.proposer)
        replay.commit()
        assert base64.b64decode(json.loads(results)["app_hash"]) == result.app_hash
        following = blocks.block(height + 1)
        if following is not None:
            assert following.header.app_hash == result.app_hash
    assert replay.store.app_hash == state.app_hash
    assert list(replay.store.all_pairs()) == list(state.all_pairs())
    assert replay.check_invariants() == []
