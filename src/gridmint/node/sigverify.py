"""Checking the signatures of a batch of transactions in worker processes, on the machine's other cores.

The devnode runs check_tx and makes blocks on one event loop, so on one core, and an ed25519 verification is a
third of what a transfer costs it there (~45 of ~150 µs). When a JSON-RPC batch brings ``SMALLEST_BATCH``
broadcasts or more, their signatures are checked in worker processes first, part by part (``tx.signatures_hold``:
it opens the envelope and verifies, and reads no state), while the loop goes on serving other requests and making
blocks; check_tx then skips the verification of each transaction whose signature held, and does every other check
as before, on the loop, in the batch's order.

Workers can only save work, never admit anything: a signature that did not hold, a worker that failed or is still
starting, or a batch too small to be worth sending leaves the transaction to check_tx's own verification.
Processes, not threads: the verification holds the interpreter lock between its C calls, so a thread would wait
for the loop's turn.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from gridmint.chain.tx import signatures_hold

log = logging.getLogger("gridmint.node")

MOST_WORKERS = 4  # beyond this the loop's own share of each transaction, not verification, is the bound
# Below this many broadcasts a batch is verified on the loop: a lone client then waits longer for the round trip to a
# worker than the verification here takes (a batch of 64: 9.1 ms against 7.7; of 300: 25.0 against 31.9).
SMALLEST_BATCH = 100
PART = 64  # signatures sent to a worker at once: ~3 ms of its work, and about what check_tx does in that time
PARENT_CHECK_S = 0.5  # how often a worker looks whether the node that started it is still there


def default_workers() -> int:
    """One worker per core this process may use beyond the loop's own, at most ``MOST_WORKERS``; 0 on one core."""
    return max(0, min(MOST_WORKERS, len(os.sched_getaffinity(0)) - 1))


class SignatureVerifier:
    """Worker processes that check batches of signatures. ``workers`` 0: none (every signature is checked by
    check_tx). The processes start at ``start`` or the first batch, and stop at ``close``; batches are verified on
    the loop until they have started. ``on_verified`` is told how many signatures each part had checked."""

    def __init__(self, workers: int | None = None, on_verified: Callable[[int], None] | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._on_verified = on_verified
        self._pool: ProcessPoolExecutor | None = None
        self._starting: list[Future[list[bool]]] = []

    def start(self) -> None:
        """Start the workers now (each takes ~0.1 s to import what it needs), so that few batches wait for that."""
        if self.workers and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_prepare_worker, initargs=(os.getpid(),))
            self._starting = [self._pool.submit(signatures_hold, []) for _ in range(self.workers)]

    def check(self, raws: list[bytes]) -> PendingSignatures:
        """Send the signatures of ``raws`` to the workers in parts of ``PART`` (so that check_tx can begin on the
        first part while the workers verify the rest), and return what follows them. Nothing is sent when there
        are no workers, the batch is too small or the workers are still starting."""
        unique = list(dict.fromkeys(raws))
        if not self.workers or len(unique) < SMALLEST_BATCH:
            return PendingSignatures([], self, None)
        self.start()
        pool = self._pool
        if pool is None or not self.ready():
            return PendingSignatures([], self, None)
        loop = asyncio.get_running_loop()
        sent: list[tuple[list[bytes], asyncio.Future[list[bool]]]] = []
        try:
            for at in range(0, len(unique), PART):
                part = unique[at:at + PART]
                sent.append((part, loop.run_in_executor(pool, signatures_hold, part)))
        except Exception as error:  # the pool found a worker dead: what was sent is still awaited, and fails
            self.failed(pool, error)
        return PendingSignatures(sent, self, pool)

    def ready(self) -> bool:
        """Whether the workers have started (each has answered once)."""
        return self._pool is not None and all(started.done() for started in self._starting)

    def verified(self, count: int) -> None:
        if self._on_verified is not None:
            self._on_verified(count)

    def failed(self, pool: ProcessPoolExecutor, error: BaseException) -> None:
        """A batch sent to ``pool`` found it failed: stop it (unless another batch already has, and started new
        workers), so that the next batch starts new workers."""
        if pool is not self._pool:
            return
        log.warning("Signature workers failed (%s: %s); the batch's signatures are verified on the loop, and new "
                    "workers start for the next batch.", type(error).__name__, error)
        self._pool = None
        pool.shutdown(wait=False)  # what other batches sent there fails or comes back; nothing is cancelled

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _prepare_worker(node: int) -> None:
    """In each worker: leave Ctrl-C to the node (a terminal sends it to the whole process group, and the node stops
    its workers itself), and end once the node process ``node`` is gone, killed included (a worker waits on a queue
    that only a node's orderly shutdown closes, and would otherwise outlive a killed node, with the resource tracker
    it holds open)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == node:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="node-watch", daemon=True).start()


class PendingSignatures:
    """A batch's signatures on their way back from the workers (of ``pool``), part by part in the batch's order;
    ``held`` has the transactions whose signatures held, among the parts come back so far."""

    def __init__(self, parts: list[tuple[list[bytes], asyncio.Future[list[bool]]]], verifier: SignatureVerifier,
                 pool: ProcessPoolExecutor | None) -> None:
        self.held: set[bytes] = set()
        self._parts = deque(parts)
        self._part_of = {raw: index for index, (part, _) in enumerate(parts) for raw in part}
        self._received = 0
        self._verifier = verifier
        self._pool = pool

    async def settle(self, raw: bytes) -> None:
        """Wait for the part that holds ``raw`` (and those before it). A failed worker is logged, its part and the
        rest left to check_tx, and new workers start for the next batch."""
        wanted = self._part_of.get(raw, -1)
        while self._received <= wanted and self._parts:
            part, answer = self._parts.popleft()
            self._received += 1
            try:
                holds = await answer
            except Exception as error:  # a worker killed, the pool broken: check_tx verifies these itself
                assert self._pool is not None
                self._verifier.failed(self._pool, error)
                self.abandon()
                return
            self._verifier.verified(len(part))
            self.held.update(one for one, held in zip(part, holds, strict=True) if held)

    def abandon(self) -> None:
        """Stop waiting for the parts not yet come back (the batch ended early, or a worker failed)."""
        for _, answer in self._parts:
            if answer.done() and not answer.cancelled():
                answer.exception()  # read, so that asyncio does not report it as never retrieved
            answer.cancel()
        self._parts.clear()
