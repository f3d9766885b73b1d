"""Views of state: committed (for queries), a block's staged writes, and a transaction's staged writes.

A transaction runs against a ``TxState``; its writes reach the block only through ``apply`` when every
message succeeded, so a failed transaction leaves no trace. A block's writes reach disk only at commit.
Values are canonical codec bytes; ``get_value``/``set_value`` encode and decode them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from gridmint.chain import codec
from gridmint.chain.store import Store


class Reader(ABC):
    """Read access with typed helpers. Subclasses provide ``get`` and ``scan``."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None: ...

    @abstractmethod
    def scan(self, prefix: bytes, below: bytes | None = None, limit: int | None = None
             ) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` under ``prefix`` in key order, stopping before ``below`` when given, and after the first
        ``limit`` pairs when given (what a block hook that works through a queue a batch at a time reads)."""

    @property
    @abstractmethod
    def height(self) -> int:
        """The committed height this view starts from (a block being built is at ``height + 1``)."""

    def get_value(self, key: bytes, default: Any = None) -> Any:
        raw = self.get(key)
        return default if raw is None else codec.decode_stored(raw)

    def get_int(self, key: bytes) -> int:
        value = self.get_value(key, 0)
        if not isinstance(value, int):
            raise TypeError(f"state value at {key!r} is not an integer")
        return value

    def scan_values(self, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        """Decoded values under ``prefix`` in key order, with the prefix stripped from the keys."""
        for key, raw in self.scan(prefix):
            yield key[len(prefix):], codec.decode_stored(raw)


class CommittedView(Reader):
    """Committed state, latest or as of a height (what queries read)."""

    def __init__(self, store: Store, height: int | None = None) -> None:
        self._store = store
        self._height = height

    @property
    def height(self) -> int:
        return self._store.height if self._height is None else self._height

    def get(self, key: bytes) -> bytes | None:
        if self._height is None:
            return self._store.get(key)
        return self._store.get_at(key, self._height)

    def scan(self, prefix: bytes, below: bytes | None = None, limit: int | None = None
             ) -> Iterator[tuple[bytes, bytes]]:
        return self._store.scan(prefix, self._height, below, limit)


class _CachedStore(Reader):
    """Latest committed reads, cached for the life of one block (the store does not change under it)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[bytes, bytes | None] = {}

    @property
    def height(self) -> int:
        return self._store.height

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = self._store.get(key)
            return value

    def scan(self, prefix: bytes, below: bytes | None = None, limit: int | None = None
             ) -> Iterator[tuple[bytes, bytes]]:
        return self._store.scan(prefix, below=below, limit=limit)


class State(Reader):
    """Writes kept in memory over a parent view; ``None`` marks a deletion. What handlers receive."""

    def __init__(self, parent: Reader) -> None:
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}

    @property
    def height(self) -> int:
        return self.parent.height

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.parent.get(key)

    def scan(self, prefix: bytes, below: bytes | None = None, limit: int | None = None
             ) -> Iterator[tuple[bytes, bytes]]:
        in_range = [(key, value) for key, value in self.writes.items()
                    if key.startswith(prefix) and (below is None or key < below)]
        # With a limit, the parent's first ``limit`` plus as many as this state deletes in the range are enough:
        # at most that many of them are deleted, and every other key of the answer is among them or written here.
        deleted = sum(1 for _, value in in_range if value is None)
        merged = dict(self.parent.scan(prefix, below, None if limit is None else limit + deleted))
        for key, value in in_range:
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        keys = sorted(merged)
        for key in keys if limit is None else keys[:limit]:
            yield key, merged[key]

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def set_value(self, key: bytes, value: Any) -> None:
        self.set(key, codec.encode(value))

    def set_int(self, key: bytes, value: int) -> None:
        """Zero deletes the key, so an emptied account leaves no state behind."""
        if value == 0:
            self.delete(key)
        else:
            self.set_value(key, value)


class BlockState(State):
    """A block's writes over the latest committed store."""

    def __init__(self, store: Store) -> None:
        super().__init__(_CachedStore(store))


class TxState(State):
    """One transaction's writes over its block's; ``apply`` hands them to the block."""

    def __init__(self, parent: State) -> None:
        super().__init__(parent)
        self._target = parent

    def apply(self) -> None:
        self._target.writes.update(self.writes)
        self.writes.clear()
