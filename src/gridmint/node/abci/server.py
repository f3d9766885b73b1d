"""An ABCI 2.0 socket server for CometBFT v0.38, driving the same ``App`` as the devnode.

CometBFT opens four connections (query, snapshot, mempool, consensus) and pipelines requests on each; every
request gets its response in order, and a ``Flush`` is answered and the socket drained. Handlers are synchronous
and run on the event loop's one thread, so requests from different connections never interleave inside the app
(CometBFT's own server takes a global lock for the same reason) — except ``Query``: anyone can send one through
CometBFT's RPC, and a costly one must not hold back the consensus connection's blocks. Each is answered on a worker
thread from a read-only snapshot of committed state (``Store.open_reader``, as the devnode's RPC does), one at a
time per connection and in order with the rest of that connection's answers.

``ProcessProposal`` accepts a block only if every transaction in it decodes and its signature verifies (the checks
that do not depend on state, so every honest node answers alike); ``PrepareProposal`` keeps only such transactions
and at most ``max_tx_bytes`` of them. State sync (node/snapshots.py): the node lists and serves the snapshots it
took, and a fresh node restores one chunk by chunk; a refused offer or chunk is an ABCI result (REJECT, RETRY with
the chunk to fetch again and the peer to drop, REJECT_SNAPSHOT), never an ``exception``: a peer's bad snapshot must
not stop the node that asked for it.
Requests that anyone can cause, ``Query`` and ``CheckTx``, are always answered with a code, whatever goes wrong
(``app/internal_error`` when nothing more precise is known), and a proposal that cannot be read is rejected: no
query or transaction can end a connection. ``exception`` is kept for failures on the consensus connection (a
block hook's bug, a block out of order), which stop CometBFT: better a halted node than a forked one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridmint.chain.app import MODULES, App, TxResult
from gridmint.chain.errors import BAD_QUERY, INTERNAL_ERROR, MALFORMED, ChainError
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.module import Event, ValidatorUpdate
from gridmint.chain.store import Store
from gridmint.node.abci import messages
from gridmint.node.abci.proto import ProtoError, decode_oneof, decode_uvarint, encode_oneof, frame
from gridmint.node.snapshots import (
    APP_HASH_MISMATCH,
    BAD_CHUNK,
    BAD_SNAPSHOT,
    STORE_NOT_EMPTY,
    UNKNOWN_FORMAT,
    Restore,
    Snapshot,
    SnapshotStore,
)

log = logging.getLogger("gridmint.abci")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Requests of the mempool and query connections, which anyone can cause (a transaction, an abci_query): an error
# answers them with a response of their own kind and a code (an ``exception`` response would stop CometBFT).
CODED_REQUESTS = ("query", "check_tx")
ANSWERS_PER_TURN = 64
QUERY_WORKERS = 2  # threads answering queries; a connection has at most one query running, in order
# How much the app takes off a socket before it answers (the stream pauses reading at twice this): enough that
# CometBFT's writes do not block while the app works through a burst of rechecks.
READ_LIMIT = MAX_MESSAGE_BYTES


def _events(events: list[Event]) -> list[dict[str, Any]]:
    return [{"type": e.type, "attributes": [{"key": k, "value": v, "index": True} for k, v in e.attributes]}
            for e in events]


def _tx_result(result: TxResult) -> dict[str, Any]:
    return {"code": result.code, "data": result.data, "log": result.log, "events": _events(result.events),
            "codespace": result.codespace}


def _updates(updates: list[ValidatorUpdate]) -> list[dict[str, Any]]:
    return [{"pub_key": {"ed25519": u.pub_key}, "power": u.power} for u in updates]


def _time_ns(timestamp: dict[str, int] | None) -> int:
    return 0 if timestamp is None else timestamp["seconds"] * 1_000_000_000 + timestamp["nanos"]


def rfc3339(timestamp: dict[str, int] | None) -> str:
    if timestamp is None:
        return "1970-01-01T00:00:00Z"
    moment = datetime.fromtimestamp(timestamp["seconds"], UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{timestamp['nanos']:09d}Z" if timestamp["nanos"] else f"{moment}Z"


class AbciApplication:
    """Turns decoded ABCI requests into calls on the app and the app's answers into responses."""

    def __init__(self, app: App, snapshots: SnapshotStore | None = None) -> None:
        self.app = app
        self.snapshots = snapshots  # None: this node neither takes nor serves snapshots (it can still restore one)
        self.restore: Restore | None = None

    def is_well_formed(self, raw: bytes) -> bool:
        """Decodes, fits the chain's size limit and carries a valid signature: what no state can change. Most of
        a proposal passed this node's check_tx, whose verdict the app remembers."""
        try:
            self.app.decode_verified(raw)
        except MemoryError:
            raise
        except Exception:  # unreadable for any reason is not well formed (every node agrees)
            return False
        return True

    def handle(self, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"on_{kind}", None)
        if handler is None:
            raise ProtoError(f"unexpected request {kind}")
        result: dict[str, Any] = handler(request)
        return result

    def on_echo(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"message": request["message"]}

    def on_flush(self, request: dict[str, Any]) -> dict[str, Any]:
        return {}

    def on_info(self, request: dict[str, Any]) -> dict[str, Any]:
        info = self.app.info()
        log.info("CometBFT %s connected (ABCI %s); the app is at height %d.", request["version"],
                 request["abci_version"], info["last_block_height"])
        return info

    def on_init_chain(self, request: dict[str, Any]) -> dict[str, Any]:
        document = {"chain_id": request["chain_id"], "genesis_time": rfc3339(request["time"]),
                    "initial_height": str(max(1, request["initial_height"])),
                    "app_state": json.loads(request["app_state_bytes"] or b"{}")}
        validators, app_hash = self.app.init_chain(validate_genesis(document, MODULES))
        log.info("Initialised chain %s with %d authorities.", request["chain_id"], len(validators))
        return {"validators": _updates(validators), "app_hash": app_hash}

    def on_query(self, request: dict[str, Any], store: Store | None = None) -> dict[str, Any]:
        """``store``: a read-only reader of committed state to answer from (a query thread's); the app's own
        otherwise."""
        answer = self.app.query(request["path"], request["data"], request["height"], store=store)
        return {"code": answer.code, "codespace": answer.codespace, "log": answer.log, "value": answer.value,
                "height": answer.height}

    def on_check_tx(self, request: dict[str, Any]) -> dict[str, Any]:
        result = self.app.check_tx(request["tx"])
        if result.code == 0:
            return {}  # code 0 and nothing else: a check records no events
        return {"code": result.code, "log": result.log, "codespace": result.codespace}

    def on_commit(self, request: dict[str, Any]) -> dict[str, Any]:
        retain_height = self.app.commit()
        if self.snapshots is not None:
            self.snapshots.after_commit(self.app.store)
        return {"retain_height": retain_height}

    def on_list_snapshots(self, request: dict[str, Any]) -> dict[str, Any]:
        snapshots = [] if self.snapshots is None else self.snapshots.list()
        return {"snapshots": [snapshot.to_abci() for snapshot in snapshots]}

    def on_load_snapshot_chunk(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.snapshots is None:
            return {"chunk": b""}
        return {"chunk": self.snapshots.load_chunk(request["height"], request["format"], request["chunk"])}

    def on_offer_snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        snapshot = Snapshot.from_abci(request["snapshot"])
        self._end_restore()  # CometBFT offers the next snapshot only once it gave up on the last one
        try:
            self.restore = Restore(self.app.store, snapshot, request["app_hash"])
        except ChainError as refusal:
            log.warning("Refusing the snapshot of height %d: %s", snapshot.height, refusal)
            result = {UNKNOWN_FORMAT: messages.OFFER_REJECT_FORMAT,
                      STORE_NOT_EMPTY: messages.OFFER_ABORT}.get(refusal.kind, messages.OFFER_REJECT)
            return {"result": result}
        log.info("Restoring the snapshot of height %d (%d chunks).", snapshot.height, snapshot.chunks)
        return {"result": messages.OFFER_ACCEPT}

    def on_apply_snapshot_chunk(self, request: dict[str, Any]) -> dict[str, Any]:
        restore = self.restore
        if restore is None:
            log.warning("A snapshot chunk arrived with no snapshot being restored; aborting state sync.")
            return {"result": messages.CHUNK_ABORT}
        index, sender = request["index"], request["sender"]
        try:
            done = restore.apply(index, request["chunk"])
        except ChainError as refusal:
            log.warning("Snapshot chunk %d from %s refused: %s", index, sender or "this node", refusal)
            if refusal.kind is BAD_CHUNK:  # that peer's copy is bad: fetch it again, from someone else
                return {"result": messages.CHUNK_RETRY, "refetch_chunks": [index],
                        "reject_senders": [sender] if sender else []}
            self._end_restore()
            if refusal.kind in (BAD_SNAPSHOT, APP_HASH_MISMATCH):  # the snapshot itself is wrong: try another
                return {"result": messages.CHUNK_REJECT_SNAPSHOT}
            return {"result": messages.CHUNK_RETRY_SNAPSHOT}
        if done:
            self._end_restore()
            # A fresh app over the restored store: it reads the chain id and parameters from state, as at a restart.
            self.app = App(self.app.store, self.app.modules)
        return {"result": messages.CHUNK_ACCEPT}

    def _end_restore(self) -> None:
        if self.restore is not None:
            self.restore.close()
            self.restore = None

    def on_prepare_proposal(self, request: dict[str, Any]) -> dict[str, Any]:
        kept, size = [], 0
        for tx in request["txs"]:
            if size + len(tx) > request["max_tx_bytes"]:
                break
            if self.is_well_formed(tx):
                kept.append(tx)
                size += len(tx)
        return {"txs": self.app.fitting(kept, request["height"]).txs}

    def on_process_proposal(self, request: dict[str, Any]) -> dict[str, Any]:
        bad = next((i for i, tx in enumerate(request["txs"]) if not self.is_well_formed(tx)), None)
        if bad is not None:
            log.warning("Rejecting the proposal for height %d: transaction %d is malformed or badly signed.",
                        request["height"], bad)
            return {"status": messages.REJECT}
        if len(self.app.fitting(request["txs"], request["height"]).txs) != len(request["txs"]):
            # PrepareProposal stops at the block's work budget; a proposal past it was made to run long.
            log.warning("Rejecting the proposal for height %d: its transactions need more work than a block allows.",
                        request["height"])
            return {"status": messages.REJECT}
        return {"status": messages.ACCEPT}

    def on_extend_vote(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"vote_extension": b""}

    def on_verify_vote_extension(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"status": messages.ACCEPT}

    def on_finalize_block(self, request: dict[str, Any]) -> dict[str, Any]:
        result = self.app.finalize_block(list(request["txs"]), request["height"], _time_ns(request["time"]),
                                         request["proposer_address"])
        if request["txs"] or request["height"] % 100 == 0:
            log.info("Finalized block %d with %d transactions.", request["height"], len(request["txs"]))
        return {"events": _events(result.events), "tx_results": [_tx_result(r) for r in result.tx_results],
                "validator_updates": _updates(result.validator_updates), "app_hash": result.app_hash}


class AbciServer:
    def __init__(self, app: App, snapshots: SnapshotStore | None = None) -> None:
        self.application = AbciApplication(app, snapshots)
        self.connections = 0
        self._queries = ThreadPoolExecutor(QUERY_WORKERS, thread_name_prefix="gridmint-abci-query")
        self._local = threading.local()
        self._readers: list[Store] = []
        self._readers_lock = threading.Lock()

    def close(self) -> None:
        """Wait for the queries that run and close their readers."""
        self._queries.shutdown(wait=True, cancel_futures=True)
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            buffer = b""
            while True:
                chunk = await reader.read(1 << 20)
                if not chunk:
                    return
                buffer += chunk
                offset = 0
                while True:
                    offset, responses, flush, query = self._answer_some(buffer, offset)
                    if responses:  # one write for many answers: a send per answer costs more than most answers
                        writer.write(b"".join(responses))
                    if flush:
                        await writer.drain()
                    if query is not None:  # answered off the loop; the connection's next answers wait for it
                        loop = asyncio.get_running_loop()
                        writer.write(frame(await loop.run_in_executor(self._queries, self._answer_query, query)))
                        continue
                    if len(responses) < ANSWERS_PER_TURN:
                        break
                    # Let the loop take in what CometBFT sent meanwhile. Its ABCI client re-arms a 20 ns flush
                    # timer while its writer is blocked on a full socket, so a reader that falls behind makes
                    # CometBFT spin and take the CPU the app needs to catch up.
                    await asyncio.sleep(0)
                buffer = buffer[offset:]
        except (ConnectionError, ProtoError) as error:
            log.warning("An ABCI connection ended: %s", error)
        finally:
            self.connections -= 1
            writer.close()

    def _answer_some(self, buffer: bytes, offset: int) -> tuple[int, list[bytes], bool, bytes | None]:
        """Answer up to ``ANSWERS_PER_TURN`` complete requests from ``offset``, stopping after a query's: (new
        offset, framed answers, whether one was a flush, the query's payload for a worker to answer, if any)."""
        responses: list[bytes] = []
        flush = False
        while offset < len(buffer) and len(responses) < ANSWERS_PER_TURN:
            try:
                length, start = decode_uvarint(buffer, offset)
            except ProtoError:
                break  # the length itself is not complete yet
            if length > MAX_MESSAGE_BYTES:
                raise ProtoError(f"a message of {length} bytes is over the limit")
            if len(buffer) < start + length:
                break
            payload = buffer[start:start + length]
            if _request_kind(payload) == "query":
                return start + length, responses, flush, payload
            response, flushed = self._respond(payload)
            responses.append(frame(response))
            flush = flush or flushed
            offset = start + length
        return offset, responses, flush, None

    def _answer_query(self, payload: bytes) -> bytes:
        """On a query thread: the query's answer from this thread's reader, at one committed height. A reader
        that cannot be opened or read (SQLite busy, no file descriptor left) still gets the query a coded answer:
        an exception here would end the connection, and CometBFT with it."""
        try:
            reader = getattr(self._local, "reader", None)
            if reader is None:
                reader = self._local.reader = self.application.app.store.open_reader()
                with self._readers_lock:
                    self._readers.append(reader)
            with reader.read_snapshot():
                return self._respond(payload, reader)[0]
        except Exception as error:
            return self._refusal("query", error)

    def _respond(self, payload: bytes, reader: Store | None = None) -> tuple[bytes, bool]:
        kind = ""
        try:
            kind, request = decode_oneof(payload, messages.REQUESTS)
            answer = self.application.on_query(request, reader) if kind == "query" else \
                self.application.handle(kind, request)
            return encode_oneof(kind, answer, messages.RESPONSES), kind == "flush"
        except Exception as error:  # every request gets an answer; only consensus ones stop
            kind = kind or _request_kind(payload)
            if kind in CODED_REQUESTS:  # even one that cannot be read (a path that is not UTF-8, say)
                return self._refusal(kind, error), False
            log.exception("The app cannot answer an ABCI %s request; CometBFT will stop.", kind or "unreadable")
            return encode_oneof("exception", {"error": _printable(str(error))}, messages.RESPONSES), True

    @staticmethod
    def _refusal(kind: str, error: Exception) -> bytes:
        """A query or check_tx that failed outside the app's own handling: answered with a code, never dropped."""
        if isinstance(error, ChainError):
            refusal = error
        elif isinstance(error, ProtoError):
            refusal = (BAD_QUERY if kind == "query" else MALFORMED)(f"the {kind} request cannot be read: {error}")
        else:
            log.error("An ABCI %s failed with %s; answering it with a code.", kind, type(error).__name__,
                      exc_info=error)
            refusal = INTERNAL_ERROR(f"the app could not answer this {kind} ({type(error).__name__})")
        answer = {"code": refusal.code, "codespace": refusal.module, "log": _printable(refusal.message)}
        return encode_oneof(kind, answer, messages.RESPONSES)


def _request_kind(payload: bytes) -> str:
    """The case of a Request whose fields could not be decoded, read from its first key ("" if none)."""
    try:
        key, _ = decode_uvarint(payload, 0)
    except ProtoError:
        return ""
    case = messages.REQUESTS.get(key >> 3)
    return "" if case is None else str(case[0])


def _printable(text: str) -> str:
    """``text`` short and encodable as a protobuf string, whatever it quotes."""
    return text[:1000].encode("utf-8", "replace").decode("utf-8")


async def serve_abci(app: App, address: str, snapshots: SnapshotStore | None = None) -> None:
    """Serve ``tcp://host:port`` or ``unix:///path`` until cancelled."""
    server = AbciServer(app, snapshots)
    if address.startswith("unix://"):
        path = Path(address[len("unix://"):])
        path.unlink(missing_ok=True)
        listener = await asyncio.start_unix_server(server.serve_connection, path=str(path), limit=READ_LIMIT)
    else:
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        listener = await asyncio.start_server(server.serve_connection, host or "127.0.0.1", int(port),
                                              limit=READ_LIMIT)
    log.info("Serving ABCI at %s.", address)
    try:
        async with listener:
            await listener.serve_forever()
    finally:
        server.close()
