"""The devnode's mempool: transactions admitted by ``check_tx``, in arrival order, bounded in count and bytes.

After each block the transactions that the block included are dropped and the rest are checked again against
the new state (CometBFT's recheck): a transaction that became invalid (its nonce was used, its funds spent)
leaves the pool instead of waiting forever.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gridmint.chain.app import App, TxResult
from gridmint.chain.errors import register
from gridmint.chain.tx import tx_hash

MEMPOOL_FULL = register("mempool", 1, "full")
ALREADY_IN_MEMPOOL = register("mempool", 2, "duplicate")


@dataclass(frozen=True)
class MempoolLimits:
    max_txs: int = 50_000
    max_bytes: int = 64 * 1024 * 1024


class Mempool:
    def __init__(self, app: App, limits: MempoolLimits | None = None) -> None:
        self.app = app
        self.limits = limits or MempoolLimits()
        self._txs: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, raw: bytes, signature_verified: bool = False) -> tuple[bytes, TxResult]:
        """Check and admit a transaction; returns its hash and the check result (code 0 = admitted).
        ``signature_verified``: see ``App.check_tx``."""
        digest = tx_hash(raw)
        if digest in self._txs:
            return digest, TxResult.failure(ALREADY_IN_MEMPOOL("transaction is already in the mempool"))
        if len(self._txs) >= self.limits.max_txs or self._bytes + len(raw) > self.limits.max_bytes:
            return digest, TxResult.failure(MEMPOOL_FULL(
                f"mempool is full ({len(self._txs)} transactions, {self._bytes} bytes); "
                "resubmit after the next block"))
        result = self.app.check_tx(raw, signature_verified)
        if result.ok:
            self._txs[digest] = raw
            self._bytes += len(raw)
        return digest, result

    def reap(self, max_txs: int, max_bytes: int) -> list[bytes]:
        """The oldest transactions that fit in a block, without removing them."""
        picked: list[bytes] = []
        total = 0
        for raw in self._txs.values():
            if len(picked) >= max_txs or total + len(raw) > max_bytes:
                break
            picked.append(raw)
            total += len(raw)
        return picked

    def update(self, included: list[bytes]) -> None:
        """Drop what the committed block included, then recheck the rest against the new state."""
        for raw in included:
            if self._txs.pop(tx_hash(raw), None) is not None:
                self._bytes -= len(raw)
        remaining = list(self._txs.items())
        self._txs.clear()
        self._bytes = 0
        for digest, raw in remaining:
            if self.app.check_tx(raw).ok:
                self._txs[digest] = raw
                self._bytes += len(raw)
