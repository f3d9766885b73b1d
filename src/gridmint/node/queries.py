"""Read work for the devnode's RPC (state queries, block and transaction reads) on worker threads.

The event loop of a devnode makes its blocks. Nothing a client asks to read runs there: each read goes to one
of ``workers`` threads, and each thread reads through its own read-only SQLite connections (WAL lets them read
while the loop commits). A read sees one committed height throughout (``Store.read_snapshot``), the latest when
it began. At most ``max_pending`` reads run or wait at once; the next one is refused at once as busy, so a flood
of reads holds a bounded amount of memory and delays blocks by no more than the threads' share of the CPU.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from gridmint.chain.store import Store
from gridmint.node.blockstore import BlockStore

T = TypeVar("T")


class QueriesBusyError(Exception):
    """Every worker is taken and ``max_pending`` reads wait already."""


@dataclass
class Snapshot:
    """What one read sees: the state at ``height`` and the block log (which holds at least that height)."""

    state: Store
    blocks: BlockStore

    @property
    def height(self) -> int:
        return self.state.height


class QueryPool:
    def __init__(self, store: Store, blocks: BlockStore, workers: int, max_pending: int) -> None:
        self._store = store
        self._blocks = blocks
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="gridmint-query")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pending = 0
        self._readers: list[tuple[Store, BlockStore]] = []
        self._closed = False

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, read: Callable[[Snapshot], T]) -> T:
        """``read`` on a worker thread, against a snapshot of committed state; QueriesBusyError when full."""
        with self._lock:
            if self._closed or self._pending >= self.max_pending:
                raise QueriesBusyError(f"{self._pending} queries are running or waiting (max_pending_queries "
                                  f"{self.max_pending}); retry shortly")
            self._pending += 1
        try:
            future = self._executor.submit(self._call, read)
        except RuntimeError:  # shut down between the check and the submit
            self._release()
            raise QueriesBusyError("the node is stopping") from None
        # Counted until the worker is done, not until this coroutine is: a client that hangs up does not free
        # a place that its read still takes.
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def _call(self, read: Callable[[Snapshot], T]) -> T:
        try:
            readers = getattr(self._local, "readers", None)
            if readers is None:
                readers = self._local.readers = (self._store.open_reader(), self._blocks.open_reader())
                with self._lock:
                    self._readers.append(readers)
            state, blocks = readers
            with state.read_snapshot():
                return read(Snapshot(state, blocks))
        finally:
            self._release()

    def close(self) -> None:
        """Wait for the reads that run, drop those that wait, and close every reader's connections."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        for state, blocks in self._readers:
            state.close()
            blocks.close()
        self._readers.clear()
