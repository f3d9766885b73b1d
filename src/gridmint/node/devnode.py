"""The embedded devnode: one process, one authority, blocks on a timer or as soon as transactions wait.

Data directory layout::

    genesis.json      the genesis document (CometBFT's shape)
    node_key.json     this authority's ed25519 seed (0600)
    state.sqlite      the app's committed state (chain/store)
    blocks.sqlite     the block log with transaction results (node/blockstore)

Start-up follows CometBFT's handshake: ``info`` gives the app's committed height; at 0 the node calls
``init_chain``; if the block log is ahead (the node died between saving a block and committing it), the missing
blocks are replayed through ``finalize_block`` and ``commit``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gridmint.chain import authority
from gridmint.chain.app import MODULES, App, BlockResult, TxResult
from gridmint.chain.crypto import PrivateKey, format_address, generate_seed
from gridmint.chain.errors import ChainError, register
from gridmint.chain.genesis import Genesis, load_genesis
from gridmint.chain.state import CommittedView
from gridmint.chain.store import DEFAULT_KEEP_RECENT, Store
from gridmint.chain.tx import tx_hash
from gridmint.node.blockstore import Block, BlockLogError, BlockStore, Header, data_hash
from gridmint.node.events import EventBus, EventMap
from gridmint.node.mempool import Mempool, MempoolLimits
from gridmint.node.metrics import NodeMetrics
from gridmint.node.results_json import EncodedResults, encode_block_results

log = logging.getLogger("gridmint.devnode")

GENESIS_FILE = "genesis.json"
NODE_KEY_FILE = "node_key.json"
MAX_BLOCK_TXS = 10_000
MAX_BLOCK_BYTES = 8 * 1024 * 1024


NODE_SETUP = register("node", 1, "setup")


class NodeSetupError(ChainError):
    """The data directory cannot be started from; the message says how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(NODE_SETUP, message)


def write_node_key(data_dir: Path, seed: bytes | None = None) -> PrivateKey:
    key = PrivateKey(seed or generate_seed())
    path = data_dir / NODE_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"type": "ed25519", "seed": base64.b64encode(key.seed).decode(),
                   "pub_key": base64.b64encode(key.public_key).decode(),
                   "address": format_address(key.address)}, handle, indent=2)
    return key


def read_node_key(data_dir: Path) -> PrivateKey:
    path = data_dir / NODE_KEY_FILE
    try:
        document = json.loads(path.read_text())
        return PrivateKey(base64.b64decode(document["seed"]))
    except FileNotFoundError:
        raise NodeSetupError(f"no node key at {path}; run `gridmint node init --data-dir {data_dir}`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise NodeSetupError(f"{path} is not a node key file: {exc}") from None


@dataclass
class Committed:
    """What waiters on a transaction learn when its block is committed."""

    height: int
    index: int
    result: TxResult


class DevNode:
    def __init__(self, data_dir: Path, block_time: float = 1.0, mempool_limits: MempoolLimits | None = None,
                 keep_recent: int = DEFAULT_KEEP_RECENT) -> None:
        """``keep_recent``: how many of the latest heights queries can read (0: every height, an archive node)."""
        self.data_dir = data_dir
        self.block_time = block_time
        self.genesis: Genesis = load_genesis(data_dir / GENESIS_FILE, MODULES)
        self.key = read_node_key(data_dir)
        self.store = Store(data_dir / "state.sqlite", keep_recent=keep_recent)
        try:
            self.blocks = BlockStore(data_dir / "blocks.sqlite")
        except BlockLogError as error:
            self.store.close()
            raise NodeSetupError(f"the block log in {data_dir} cannot be opened: {error}") from None
        self.app = App(self.store)
        self.mempool = Mempool(self.app, mempool_limits)
        self.events = EventBus()
        self.metrics = NodeMetrics(mempool_size=self.mempool.__len__)
        self.last_block_hash = b""
        self.last_app_hash = b""
        self.last_block_time_ns = self.genesis.genesis_time_ns
        self._waiters: dict[bytes, list[asyncio.Future[Committed]]] = {}
        self._tx_arrived = asyncio.Event()
        self.backlogged = False  # the last block was full: the next follows at once
        self._handshake()

    # --- start-up --------------------------------------------------------------------------------------

    def _handshake(self) -> None:
        app_height = self.app.info()["last_block_height"]
        if app_height > self.blocks.height:
            raise NodeSetupError(
                f"state is at height {app_height} but the block log ends at {self.blocks.height}: "
                f"the data directory {self.data_dir} is damaged")
        if app_height == 0:
            _, self.last_app_hash = self.app.init_chain(self.genesis)
        else:
            self.last_app_hash = self.store.app_hash
        if self.app.chain_id != self.genesis.chain_id:
            raise NodeSetupError(f"state belongs to chain {self.app.chain_id}, genesis to {self.genesis.chain_id}")
        for height in range(app_height + 1, self.blocks.height + 1):
            block = self.blocks.block(height)
            if block is None:
                raise NodeSetupError(f"block {height} is missing from the block log")
            log.info("Replaying block %d that was saved but not committed.", height)
            result = self.app.finalize_block(block.txs, height, block.header.time_ns, block.header.proposer)
            self.app.commit()
            self.last_app_hash = result.app_hash
        if self.blocks.height:
            last = self.blocks.block(self.blocks.height)
            if last is not None:
                self.last_block_hash = last.hash
                self.last_block_time_ns = last.header.time_ns
        members = (authority.get_members(CommittedView(self.store)) if self.store.height
                   else self.genesis.modules["authority"].members)
        if self.key.address not in {account for account, _ in members}:
            raise NodeSetupError(
                f"this node's key {format_address(self.key.address)} is not an authority in the genesis of "
                f"{self.genesis.chain_id}; a devnode must be one")

    @property
    def height(self) -> int:
        return self.store.height

    # --- transactions ----------------------------------------------------------------------------------

    def submit(self, raw: bytes, signature_verified: bool = False) -> tuple[bytes, TxResult]:
        """``signature_verified``: see ``App.check_tx``."""
        digest, result = self.mempool.add(raw, signature_verified)
        if result.ok:
            self._tx_arrived.set()
        return digest, result

    def wait_for(self, digest: bytes) -> asyncio.Future[Committed]:
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(digest, []).append(future)
        return future

    def forget_waiter(self, digest: bytes, future: asyncio.Future[Committed]) -> None:
        waiting = self._waiters.get(digest, [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self._waiters.pop(digest, None)

    # --- blocks ----------------------------------------------------------------------------------------

    def produce_block(self) -> tuple[Block, BlockResult]:
        # A chain restarted from an exported genesis begins at its initial height, not at 1.
        height = max(self.store.height, self.genesis.initial_height - 1) + 1
        fill = self.app.fitting(self.mempool.reap(MAX_BLOCK_TXS, MAX_BLOCK_BYTES), height)
        txs = fill.txs
        # A block full of work leaves a backlog: the next one follows at once instead of a block time later. (The
        # work budget binds before the count or the bytes: a transaction counts at least ENVELOPE_UNITS.)
        self.backlogged = fill.full
        time_ns = max(time.time_ns(), self.last_block_time_ns + 1)  # header times strictly increase
        header = Header(self.genesis.chain_id, height, time_ns, self.last_block_hash, data_hash(txs),
                        self.last_app_hash, self.key.address)
        block = Block(header, txs)
        result = self.app.finalize_block(txs, height, time_ns, self.key.address)
        encoded = encode_block_results(result)
        self.blocks.save(block, encoded)
        self.app.commit()
        self.last_block_hash = block.hash
        self.last_app_hash = result.app_hash
        self.last_block_time_ns = time_ns
        self.mempool.update(txs)
        self.metrics.block_committed(height, time_ns, len(txs))
        self._announce(block, result, encoded)
        if len(txs) or height % 100 == 0:
            log.info("Committed block %d with %d transactions; %d wait in the mempool.", height, len(txs),
                     len(self.mempool))
        return block, result

    def _announce(self, block: Block, result: BlockResult, encoded: EncodedResults) -> None:
        """Answer those waiting for the block's transactions, and publish its Tx and NewBlock events (their data
        the block's results as the block log encoded them)."""
        height = block.header.height
        for index, (raw, tx_result) in enumerate(zip(block.txs, result.tx_results, strict=True)):
            digest = tx_hash(raw)
            for future in self._waiters.pop(digest, []):
                if not future.done():
                    future.set_result(Committed(height, index, tx_result))
            if len(self.events):
                events: EventMap = {"tm.event": ["Tx"], "tx.hash": [digest.hex().upper()], "tx.height": [str(height)]}
                for event in tx_result.events:
                    for key, value in event.attributes:
                        events.setdefault(f"{event.type}.{key}", []).append(value)
                self.events.publish(events, ("Tx", block, index, encoded.tx_results[index]))
        if len(self.events):
            block_events: EventMap = {"tm.event": ["NewBlock"], "block.height": [str(height)]}
            self.events.publish(block_events, ("NewBlock", block, encoded))

    async def produce_forever(self) -> None:
        """Make a block every ``block_time`` seconds, or (at 0) as soon as transactions wait; after a full block,
        the next one at once (what waits would otherwise wait a block time for room it could have now)."""
        next_at = time.monotonic()
        while True:
            if self.backlogged:
                await asyncio.sleep(0)  # requests in flight are served between blocks
                next_at = time.monotonic()
            elif self.block_time > 0:
                next_at += self.block_time
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - self.block_time)
            else:
                await self._tx_arrived.wait()
                await asyncio.sleep(0)  # let requests already in flight reach the mempool first
            self._tx_arrived.clear()
            try:
                self.produce_block()
            except Exception:
                log.exception("Block production failed; the node stops so that no inconsistent state is served.")
                raise
            if self.block_time == 0 and len(self.mempool):
                self._tx_arrived.set()

    def close(self) -> None:
        self.store.close()
        self.blocks.close()
