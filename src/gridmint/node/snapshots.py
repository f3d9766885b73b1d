"""State sync: snapshots of the committed state that a new node restores instead of replaying every block.

A snapshot (format 1) is the whole ``state`` table of one height, in key order, as records
``u32 key length || key || u32 value length || value``, cut into chunks of about ``CHUNK_RAW_BYTES`` and each chunk
compressed with zlib. Its metadata is the SHA-256 of every chunk, in order; its hash is the SHA-256 of the metadata.
So a restoring node checks each chunk as it arrives (a peer that sends a corrupted chunk is named and the chunk
fetched again), and the restored state as a whole against the app hash that CometBFT's light client vouches for
(the LtHash of the pairs must give exactly that hash), before anything is written to its store.

Taking one: every ``interval`` heights, right after the commit, a read transaction on a second SQLite connection
pins the committed state of that height; a thread writes the chunks from it while blocks go on (WAL lets the
writer commit meanwhile). A snapshot becomes visible only once complete (its folder is renamed into place); the
newest ``keep`` are kept. Snapshots are node-local files: they change nothing in the state or the app hash.

Files: ``<folder>/<height>/chunk-<index>`` and ``<folder>/<height>/manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmint.chain import lthash
from gridmint.chain.errors import register
from gridmint.chain.store import Store

log = logging.getLogger("gridmint.snapshots")

SNAPSHOT_FORMAT = 1
# Raw bytes of records per chunk before compression: well under CometBFT's 16 MB chunk message, few round trips.
CHUNK_RAW_BYTES = 4 * 1024 * 1024
# A snapshot's metadata carries 32 bytes per chunk and travels in one 4 MB p2p message: 65,536 chunks fit
# (256 GiB of state); an offer of more is refused before anything is fetched.
MAX_CHUNKS = 65_536
DEFAULT_SNAPSHOT_INTERVAL = 1_000  # heights between snapshots (0: take none)
DEFAULT_KEEP_SNAPSHOTS = 2
_LENGTH = struct.Struct(">I")
_MANIFEST = "manifest.json"

BAD_OFFER = register("snapshot", 1, "bad_offer")
UNKNOWN_FORMAT = register("snapshot", 2, "unknown_format")
STORE_NOT_EMPTY = register("snapshot", 3, "store_not_empty")
NO_RESTORE = register("snapshot", 4, "no_restore")
BAD_CHUNK = register("snapshot", 5, "bad_chunk")
BAD_SNAPSHOT = register("snapshot", 6, "bad_snapshot")
APP_HASH_MISMATCH = register("snapshot", 7, "app_hash_mismatch")


@dataclass(frozen=True)
class Snapshot:
    """What ``ListSnapshots`` announces and ``OfferSnapshot`` carries."""

    height: int
    format: int
    chunks: int
    hash: bytes
    metadata: bytes  # the chunks' SHA-256 digests, concatenated

    def to_abci(self) -> dict[str, Any]:
        return {"height": self.height, "format": self.format, "chunks": self.chunks, "hash": self.hash,
                "metadata": self.metadata}

    @classmethod
    def from_abci(cls, message: dict[str, Any] | None) -> Snapshot:
        message = message or {}
        return cls(message.get("height", 0), message.get("format", 0), message.get("chunks", 0),
                   message.get("hash", b""), message.get("metadata", b""))

    def chunk_digest(self, index: int) -> bytes:
        return self.metadata[32 * index:32 * index + 32]


# --- records -----------------------------------------------------------------------------------------------

def encode_chunks(pairs: Iterable[tuple[bytes, bytes]]) -> Iterator[bytes]:
    """The compressed chunks of ``pairs`` (already in key order)."""
    records: list[bytes] = []
    size = 0
    for key, value in pairs:
        records += (_LENGTH.pack(len(key)), key, _LENGTH.pack(len(value)), value)
        size += 8 + len(key) + len(value)
        if size >= CHUNK_RAW_BYTES:
            yield zlib.compress(b"".join(records), 1)
            records, size = [], 0
    if records or size == 0:
        yield zlib.compress(b"".join(records), 1)  # an empty state is one empty chunk: CometBFT needs one


def decode_chunk(chunk: bytes) -> list[tuple[bytes, bytes]]:
    """The pairs of one chunk; raises BAD_SNAPSHOT when it does not decompress within bounds or parse."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(chunk, 2 * CHUNK_RAW_BYTES)
    except zlib.error as error:
        raise BAD_SNAPSHOT(f"a chunk does not decompress ({error}); expected zlib data of format "
                           f"{SNAPSHOT_FORMAT}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise BAD_SNAPSHOT(f"a chunk is truncated or holds more than {2 * CHUNK_RAW_BYTES} bytes; expected "
                           f"at most {CHUNK_RAW_BYTES} bytes of records")
    pairs, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BAD_SNAPSHOT(f"a chunk's records end inside a key length at byte {offset}")
        (key_length,) = _LENGTH.unpack_from(raw, offset)
        key_end = offset + 4 + key_length
        if key_end + 4 > len(raw):
            raise BAD_SNAPSHOT(f"a chunk's record at byte {offset} runs past the chunk's end")
        (value_length,) = _LENGTH.unpack_from(raw, key_end)
        value_end = key_end + 4 + value_length
        if value_end > len(raw):
            raise BAD_SNAPSHOT(f"a chunk's record at byte {offset} runs past the chunk's end")
        pairs.append((raw[offset + 4:key_end], raw[key_end + 4:value_end]))
        offset = value_end
    return pairs


# --- taking and serving snapshots (the nodes that have the state) ------------------------------------------

class SnapshotStore:
    """This node's snapshots in ``folder``: taken every ``interval`` heights (0: never), the newest ``keep``."""

    def __init__(self, folder: Path, interval: int = DEFAULT_SNAPSHOT_INTERVAL,
                 keep: int = DEFAULT_KEEP_SNAPSHOTS) -> None:
        if interval < 0 or keep < 1:
            raise ValueError(f"snapshot interval must be 0 or more and keep 1 or more, got {interval} and {keep}")
        self.folder = folder
        self.interval = interval
        self.keep = keep
        self._worker: threading.Thread | None = None
        folder.mkdir(parents=True, exist_ok=True)
        for partial in folder.glob("*.partial"):  # a snapshot cut short by a crash: never announced
            shutil.rmtree(partial, ignore_errors=True)

    def list(self) -> list[Snapshot]:
        """Complete snapshots, newest first."""
        found = []
        for entry in self.folder.iterdir():
            if entry.name.isdigit():
                try:
                    manifest = json.loads((entry / _MANIFEST).read_text())
                except (OSError, ValueError):
                    continue  # pruned while listed
                found.append(Snapshot(manifest["height"], manifest["format"], manifest["chunks"],
                                      bytes.fromhex(manifest["hash"]), bytes.fromhex(manifest["metadata"])))
        return sorted(found, key=lambda snapshot: snapshot.height, reverse=True)

    def load_chunk(self, height: int, format_: int, index: int) -> bytes:
        """A chunk's bytes; empty when this node does not have it (CometBFT then asks another peer)."""
        if format_ != SNAPSHOT_FORMAT or index >= MAX_CHUNKS:
            return b""
        try:
            return (self.folder / str(height) / f"chunk-{index:05d}").read_bytes()
        except OSError:
            return b""

    def after_commit(self, store: Store) -> None:
        """Called right after each commit: at every ``interval``-th height, pin that state and write it on a
        thread. A snapshot still being written makes this one skipped (the next interval will do)."""
        height = store.height
        if not self.interval or height % self.interval:
            return
        if self._worker is not None and self._worker.is_alive():
            log.warning("Skipping the snapshot of height %d: the previous one is still being written.", height)
            return
        reader = store.open_reader()
        pinned = reader.read_snapshot()
        view = pinned.__enter__()  # the read transaction starts here, on the committed state of ``height``

        def write() -> None:
            try:
                self.take(view, height)
            except Exception:  # a snapshot is a convenience for others: a failure must not stop this node
                log.exception("The snapshot of height %d failed.", height)
            finally:
                pinned.__exit__(None, None, None)
                reader.close()

        self._worker = threading.Thread(target=write, name=f"snapshot-{height}", daemon=True)
        self._worker.start()

    def wait(self) -> None:
        """Until the snapshot being written (if any) is complete."""
        if self._worker is not None:
            self._worker.join()

    def take(self, store: Store, height: int) -> Snapshot:
        """Write the snapshot of ``store``'s committed state (which must be at ``height``) and prune old ones."""
        if store.height != height:
            raise ValueError(f"snapshot of height {height} asked of a store at height {store.height}")
        partial = self.folder / f"{height}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        digests = []
        for index, chunk in enumerate(encode_chunks(store.all_pairs())):
            (partial / f"chunk-{index:05d}").write_bytes(chunk)
            digests.append(hashlib.sha256(chunk).digest())
        if len(digests) > MAX_CHUNKS:
            shutil.rmtree(partial, ignore_errors=True)
            raise ValueError(f"the state of height {height} needs {len(digests)} chunks, over {MAX_CHUNKS}")
        metadata = b"".join(digests)
        snapshot = Snapshot(height, SNAPSHOT_FORMAT, len(digests), hashlib.sha256(metadata).digest(), metadata)
        (partial / _MANIFEST).write_text(json.dumps({
            "height": height, "format": SNAPSHOT_FORMAT, "chunks": snapshot.chunks, "hash": snapshot.hash.hex(),
            "metadata": metadata.hex(), "app_hash": store.app_hash.hex()}))
        final = self.folder / str(height)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        for old in self.list()[self.keep:]:
            shutil.rmtree(self.folder / str(old.height), ignore_errors=True)
        log.info("Snapshot of height %d: %d chunks.", height, snapshot.chunks)
        return snapshot


# --- restoring one (the node that joins) -------------------------------------------------------------------

class Restore:
    """One snapshot being restored into an empty store: offered, then applied chunk by chunk, in order. Nothing
    is written to the store until the last chunk has arrived and the whole state matches the trusted app hash.

    The pairs wait in a staging SQLite file beside the store (``<store>.restore``, removed when the restore ends
    either way), not in memory: a peer's snapshot can claim any size, and only the last chunk tells whether it
    is the state the light client vouches for."""

    def __init__(self, store: Store, snapshot: Snapshot, app_hash: bytes) -> None:
        check_offer(store, snapshot, app_hash)
        self.store = store
        self.snapshot = snapshot
        self.app_hash = app_hash
        self.next_index = 0
        self.keys = 0
        self.last_key: bytes | None = None
        self.lanes = lthash.empty()
        self.staging_path = Path(f"{store.path}.restore")
        self.staging_path.unlink(missing_ok=True)
        self.staging = sqlite3.connect(self.staging_path, isolation_level=None, check_same_thread=False)
        self.staging.execute("PRAGMA journal_mode=OFF")  # a scratch file: a crash restarts the restore
        self.staging.execute("PRAGMA synchronous=OFF")
        self.staging.execute("CREATE TABLE pairs (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")

    def close(self) -> None:
        """Drop the staging file (the restore is over, done or refused)."""
        self.staging.close()
        self.staging_path.unlink(missing_ok=True)

    def apply(self, index: int, chunk: bytes) -> bool:
        """Take chunk ``index``; True once the snapshot is complete and restored. Raises BAD_CHUNK (fetch it again,
        from another peer), BAD_SNAPSHOT or APP_HASH_MISMATCH (this snapshot cannot be restored), NO_RESTORE (out
        of order). The store is untouched unless it returns True."""
        if index != self.next_index:
            raise NO_RESTORE(f"chunk {index} arrived while chunk {self.next_index} of the snapshot of height "
                             f"{self.snapshot.height} was expected; chunks are applied in order")
        digest, expected = hashlib.sha256(chunk).digest(), self.snapshot.chunk_digest(index)
        if digest != expected:
            raise BAD_CHUNK(f"chunk {index} of the snapshot of height {self.snapshot.height} has SHA-256 "
                            f"{digest.hex()[:16]}…, the snapshot's metadata says {expected.hex()[:16]}…")
        pairs = decode_chunk(chunk)
        last = self.last_key
        for key, _ in pairs:
            if last is not None and key <= last:
                raise BAD_SNAPSHOT(f"chunk {index} holds key {key[:40]!r} after {last[:40]!r}; a snapshot's keys "
                                   "must be strictly increasing")
            last = key
        self.lanes = lthash.combine(self.lanes, pairs, ())
        self.staging.executemany("INSERT INTO pairs (key, value) VALUES (?, ?)", pairs)
        self.last_key = last
        self.keys += len(pairs)
        self.next_index += 1
        if self.next_index < self.snapshot.chunks:
            return False
        restored = lthash.checksum(self.lanes)
        if restored != self.app_hash:
            raise APP_HASH_MISMATCH(f"the snapshot of height {self.snapshot.height} gives app hash "
                                    f"{restored.hex()[:16]}…, the trusted header says {self.app_hash.hex()[:16]}…")
        staged = ((bytes(key), bytes(value)) for key, value in
                  self.staging.execute("SELECT key, value FROM pairs ORDER BY key"))
        self.store.restore(self.snapshot.height, staged, self.lanes)
        log.info("Restored the state of height %d (%d keys) from a snapshot.", self.snapshot.height, self.keys)
        return True


def check_offer(store: Store, snapshot: Snapshot, app_hash: bytes) -> None:
    """Raise the refusal for a snapshot this node cannot restore, before a chunk is fetched."""
    if snapshot.format != SNAPSHOT_FORMAT:
        raise UNKNOWN_FORMAT(f"snapshot format {snapshot.format} is not known; this node restores format "
                             f"{SNAPSHOT_FORMAT}")
    if store.height != 0:
        raise STORE_NOT_EMPTY(f"this node already holds height {store.height}; state sync restores only into an "
                              "empty store (start from a fresh home)")
    if snapshot.height < 1:
        raise BAD_OFFER(f"snapshot height {snapshot.height}: expected a committed height, 1 or more")
    if not 1 <= snapshot.chunks <= MAX_CHUNKS or len(snapshot.metadata) != 32 * snapshot.chunks:
        raise BAD_OFFER(f"a snapshot of {snapshot.chunks} chunks with {len(snapshot.metadata)} bytes of metadata: "
                        f"expected 1 to {MAX_CHUNKS} chunks and 32 bytes of metadata per chunk")
    if hashlib.sha256(snapshot.metadata).digest() != snapshot.hash:
        raise BAD_OFFER("the snapshot's hash is not the SHA-256 of its metadata")
    if len(app_hash) != 32:
        raise BAD_OFFER(f"the trusted app hash has {len(app_hash)} bytes; expected 32")
