"""Signature workers (node/sigverify.py): real worker processes check a batch's signatures, part by part; they can
only save check_tx work, so a small batch, no workers or a killed worker leave every signature to check_tx."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from gridmint.chain.bank import MsgSend
from gridmint.node.sigverify import PART, SMALLEST_BATCH, SignatureVerifier, default_workers
from tests.support.chain import forged, key, signed
from tests.support.nodes import DevnodeProcess
from tests.support.waiting import wait_for


def _batch(good: int, forging: int) -> tuple[list[bytes], list[bytes]]:
    """``good`` transfers signed by their signer and ``forging`` ones whose signature is another's, interleaved."""
    valid = [signed(key("alice"), nonce, MsgSend(key("bob").address, 1)) for nonce in range(1, good + 1)]
    bad = [forged(signed(key("bob"), nonce, MsgSend(key("alice").address, 1))) for nonce in range(1, forging + 1)]
    mixed = [*[raw for pair in zip(valid, bad, strict=False) for raw in pair], *valid[len(bad):]]
    return [*mixed, b"garbage", valid[0]], valid  # and something that does not open, and a duplicate


def _started(verifier: SignatureVerifier) -> SignatureVerifier:
    verifier.start()
    wait_for(verifier.ready, "the signature workers to start", timeout_s=30, interval_s=0.05)
    return verifier


async def _settle_all(verifier: SignatureVerifier, raws: list[bytes]) -> set[bytes]:
    pending = verifier.check(raws)
    for raw in raws:
        await pending.settle(raw)
    return pending.held


def test_the_workers_find_exactly_the_signatures_that_hold() -> None:
    raws, valid = _batch(good=2 * PART, forging=PART // 2)
    counted: list[int] = []
    verifier = _started(SignatureVerifier(workers=1, on_verified=counted.append))
    try:
        assert asyncio.run(_settle_all(verifier, raws)) == set(valid)
    finally:
        verifier.close()
    assert sum(counted) == len(set(raws)) and max(counted) == PART  # each part counted once it came back


def test_a_batch_waits_for_no_worker_that_is_still_starting() -> None:
    raws, valid = _batch(good=SMALLEST_BATCH, forging=0)
    verifier = SignatureVerifier(workers=1)
    try:
        verifier.start()
        assert not verifier.ready()  # spawned, still importing
        pending = verifier.check(raws)
        asyncio.run(pending.settle(raws[-1]))
        assert pending.held == set()  # left to check_tx, not waited for
        wait_for(verifier.ready, "the signature workers to start", timeout_s=30, interval_s=0.05)
        assert asyncio.run(_settle_all(verifier, raws)) == set(valid)
    finally:
        verifier.close()


def test_no_workers_or_a_small_batch_sends_nothing() -> None:
    many, _ = _batch(good=SMALLEST_BATCH, forging=0)
    small = many[:SMALLEST_BATCH - 1]
    for verifier, batch in ((SignatureVerifier(workers=0), many), (SignatureVerifier(workers=1), small)):
        pending = verifier.check(batch)
        assert verifier._pool is None  # no process was started for it
        asyncio.run(pending.settle(batch[0]))
        assert pending.held == set()


def test_a_killed_worker_leaves_its_batch_to_check_tx_and_the_workers_start_again(
        caplog: pytest.LogCaptureFixture) -> None:
    raws, valid = _batch(good=2 * PART, forging=4)
    verifier = _started(SignatureVerifier(workers=1))

    async def scenario() -> tuple[set[bytes], set[bytes]]:
        assert await _settle_all(verifier, raws) == set(valid)  # the worker is up
        assert verifier._pool is not None
        for pid in list(verifier._pool._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        first = await _settle_all(verifier, raws)
        await asyncio.to_thread(_started, verifier)  # new workers
        again = await _settle_all(verifier, raws)
        return first, again

    try:
        with caplog.at_level(logging.WARNING, logger="gridmint.node"):
            first, again = asyncio.run(scenario())
    finally:
        verifier.close()
    assert first == set()  # nothing held: check_tx verifies every one of them itself
    assert "Signature workers failed" in caplog.text
    assert again == set(valid)


def test_a_killed_node_leaves_no_worker_behind(devnode_process: DevnodeProcess) -> None:
    """SIGKILL gives the node no chance to stop its workers: they notice it is gone and end, and with them the
    resource tracker they hold open."""
    assert devnode_process.process is not None
    pid = devnode_process.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if default_workers():
        assert len(children) >= 2  # the worker and multiprocessing's resource tracker
    devnode_process.kill()
    wait_for(lambda: not any(Path(f"/proc/{child}").exists() for child in children),
             "the killed node's worker processes to end", timeout_s=10)
