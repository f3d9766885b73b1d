"""JSON-RPC over HTTP and websocket with CometBFT's method names, parameters and answer shapes.

Methods: ``health``, ``status``, ``abci_info``, ``abci_query``, ``broadcast_tx_sync``, ``broadcast_tx_async``,
``broadcast_tx_commit``, ``block``, ``block_results``, ``tx``, ``num_unconfirmed_txs``, and over ``/websocket``
also ``subscribe``, ``unsubscribe`` and ``unsubscribe_all``. Requests come as JSON-RPC 2.0 POSTs to ``/`` (single
or batch) or as CometBFT's URI form (``GET /block?height=5``). Integers of 64 bits are strings, hashes upper-case
hex, and transactions and query values base64, as CometBFT writes them, so one client works against both.
``/metrics`` serves Prometheus metrics.

Limits (``RPCLimits``, CometBFT's names and defaults) and how each is refused; every refusal leaves the
connection, and the server, serving everyone else:

- a body over ``max_body_bytes``: HTTP 413 with JSON-RPC error -32600 (Invalid Request);
- a batch over ``max_request_batch_size``: -32600, CometBFT's sentence "batch request exceeds maximum (10)
  allowed number of requests";
- a subscription past ``max_subscriptions_per_client`` or ``max_subscription_clients``: -32005 (Limit exceeded);
- a query when ``max_pending_queries`` already run or wait: -32006 (Server busy), to retry later;
- a websocket message over ``max_websocket_message_bytes``: the server closes that websocket (code 1009);
- headers over ``max_header_bytes`` (HTTP 431) and connections past ``max_open_connections`` (HTTP 503) are
  refused before any of this code runs (``node/server.py``).

Reads (``abci_query``, ``block``, ``block_results``, ``tx``, in both the JSON and the URI form) run on the query
workers (``node/queries.py``), never on the event loop that makes blocks; their answers are encoded to JSON there
too, so a large block costs the loop nothing but copying bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gridmint import __version__
from gridmint.chain.app import TxResult
from gridmint.chain.tx import tx_hash
from gridmint.node.blockstore import Block, BlockLogError, BlockStore
from gridmint.node.devnode import Committed, DevNode
from gridmint.node.events import EventMap, QueryError, Subscription, parse_query
from gridmint.node.limits import RPCLimits
from gridmint.node.queries import QueriesBusyError, QueryPool, Snapshot
from gridmint.node.results_json import EncodedResults, encode_tx_result
from gridmint.node.sigverify import SignatureVerifier

log = logging.getLogger("gridmint.rpc")

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
# In JSON-RPC's range for server errors: a limit of one client's, and the node's reads all taken for now.
LIMIT_EXCEEDED, SERVER_BUSY = -32005, -32006
EVENT_CACHE_SIZE = 64  # events whose JSON is kept for the subscribers still to receive them


# Requests of a batch answered between two turns of the event loop: a turn per request cost the devnode a
# tenth of its transfers per second; 32 broadcasts (~5 ms) keep block production on time.
BATCH_ITEMS_PER_TURN = 32
BROADCASTS = frozenset({"broadcast_tx_sync", "broadcast_tx_async", "broadcast_tx_commit"})
# The transactions of the batch being answered whose signatures held in the signature workers (node/sigverify.py);
# each request runs in its own task, so its own context.
_SIGNATURES_HELD: ContextVar[set[bytes] | frozenset[bytes]] = ContextVar("signatures_held", default=frozenset())

class RPCError(Exception):
    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _invalid(data: str) -> RPCError:
    return RPCError(INVALID_PARAMS, "Invalid params", data)


# --- encoding helpers --------------------------------------------------------------------------------------


def rfc3339(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def hex_upper(raw: bytes) -> str:
    return raw.hex().upper()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def block_json(block: Block) -> dict[str, Any]:
    header = block.header
    return {
        "block_id": {"hash": hex_upper(block.hash), "parts": {"total": 1, "hash": hex_upper(block.hash)}},
        "block": {
            "header": {
                "version": {"block": "11", "app": "1"},
                "chain_id": header.chain_id,
                "height": str(header.height),
                "time": rfc3339(header.time_ns),
                "last_block_id": {"hash": hex_upper(header.last_block_hash), "parts": {"total": 0, "hash": ""}},
                "data_hash": hex_upper(header.data_hash),
                "app_hash": hex_upper(header.app_hash),
                "proposer_address": hex_upper(header.proposer),
            },
            "data": {"txs": [b64(tx) for tx in block.txs]},
            "evidence": {"evidence": []},
            "last_commit": None,
        },
    }


def _decode_bytes(value: Any, name: str, uri: bool) -> bytes:
    """Bytes as CometBFT accepts them: base64 in JSON bodies; ``0x``-hex or quoted base64 in URIs."""
    if not isinstance(value, str):
        raise _invalid(f"{name}: expected a string")
    try:
        if uri:
            if value.startswith("0x"):
                return bytes.fromhex(value[2:])
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        expected = "0x-prefixed hex or quoted base64" if uri else "base64"
        raise _invalid(f"{name}: expected {expected}") from None


def _decode_hash(value: Any) -> bytes:
    if isinstance(value, str) and len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    digest = _decode_bytes(value, "hash", uri=False)
    if len(digest) != 32:
        raise _invalid("hash: expected 32 bytes (64 hex characters)")
    return digest


def _height(value: Any, name: str = "height") -> int:
    if value is None or value == "":
        return 0
    try:
        height = int(str(value).strip('"'))
    except ValueError:
        raise _invalid(f"{name}: expected a whole number") from None
    if height < 0:
        raise _invalid(f"{name}: must not be negative")
    return height


def _text(value: Any, name: str, uri: bool) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name}: expected a string")
    if uri and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


# --- the methods -------------------------------------------------------------------------------------------


class RPCMethods:
    def __init__(self, node: DevNode, queries: QueryPool, limits: RPCLimits) -> None:
        self.node = node
        self.queries = queries
        self.limits = limits

    async def _read(self, read: Any) -> Any:
        try:
            return await self.queries.run(read)
        except QueriesBusyError as busy:
            raise RPCError(SERVER_BUSY, "Server busy", str(busy)) from None

    def health(self, params: dict[str, Any], uri: bool) -> Any:
        return {}

    def status(self, params: dict[str, Any], uri: bool) -> Any:
        node = self.node
        return {
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "1"},
                "id": node.key.address.hex(), "listen_addr": "", "network": node.genesis.chain_id,
                "version": f"gridmint-devnode/{__version__}", "channels": "", "moniker": "devnode",
                "other": {"tx_index": "on", "rpc_address": ""},
            },
            "sync_info": {
                "latest_block_hash": hex_upper(node.last_block_hash),
                "latest_app_hash": hex_upper(node.last_app_hash),
                "latest_block_height": str(node.height),
                "latest_block_time": rfc3339(node.last_block_time_ns),
                "earliest_block_height": str(node.blocks.base_height()),
                "catching_up": False,
            },
            "validator_info": {
                "address": hex_upper(node.key.address),
                "pub_key": {"type": "tendermint/PubKeyEd25519", "value": b64(node.key.public_key)},
                "voting_power": "10",
            },
        }

    def abci_info(self, params: dict[str, Any], uri: bool) -> Any:
        info = self.node.app.info()
        return {"response": {"data": info["data"], "version": info["version"], "app_version": str(info["app_version"]),
                             "last_block_height": str(info["last_block_height"]),
                             "last_block_app_hash": b64(info["last_block_app_hash"])}}

    async def abci_query(self, params: dict[str, Any], uri: bool) -> Any:
        path = _text(params.get("path", ""), "path", uri)
        raw_data = params.get("data", "")
        try:
            data = bytes.fromhex(str(raw_data).removeprefix("0x").strip('"')) if raw_data else b""
        except ValueError:
            raise _invalid("data: expected hex") from None
        height = _height(params.get("height"))
        app = self.node.app

        def read(snapshot: Snapshot) -> Encoded:
            result = app.query(path, data, height, store=snapshot.state)
            return Encoded.of({"response": {
                "code": result.code, "log": result.log, "info": "", "index": "0", "key": b64(data),
                "value": b64(result.value), "proofOps": None, "height": str(result.height),
                "codespace": result.codespace}})

        return await self._read(read)

    def _submit(self, params: dict[str, Any], uri: bool) -> tuple[bytes, TxResult]:
        if "tx" not in params:
            raise _invalid("tx: missing; send the signed transaction as base64")
        raw = _decode_bytes(params["tx"], "tx", uri)
        return self.node.submit(raw, signature_verified=raw in _SIGNATURES_HELD.get())

    def broadcast_tx_sync(self, params: dict[str, Any], uri: bool) -> Any:
        digest, result = self._submit(params, uri)
        return {"code": result.code, "data": b64(result.data), "log": result.log, "codespace": result.codespace,
                "hash": hex_upper(digest)}

    broadcast_tx_async = broadcast_tx_sync  # check_tx is cheap here, so async answers after it too

    async def broadcast_tx_commit(self, params: dict[str, Any], uri: bool) -> Any:
        tx = _decode_bytes(params.get("tx"), "tx", uri)
        digest = tx_hash(tx)
        future = self.node.wait_for(digest)  # wait first: a block may be made before this coroutine resumes
        timeout = self.limits.timeout_broadcast_tx_commit_s
        try:
            digest, check = self.node.submit(tx, signature_verified=tx in _SIGNATURES_HELD.get())
            if not check.ok:
                return _commit_answer(check, TxResult(), digest, 0)
            try:
                committed: Committed = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                raise RPCError(INTERNAL_ERROR, "Internal error",
                               f"timed out waiting for tx to be included in a block after {timeout}s "
                               "(timeout_broadcast_tx_commit); it may still be committed: look it up with tx"
                               ) from None
            return _commit_answer(check, committed.result, digest, committed.height)
        finally:
            self.node.forget_waiter(digest, future)

    def num_unconfirmed_txs(self, params: dict[str, Any], uri: bool) -> Any:
        return {"n_txs": str(len(self.node.mempool)), "total": str(len(self.node.mempool)),
                "total_bytes": str(self.node.mempool.size_bytes), "txs": None}

    async def _stored_block(self, params: dict[str, Any],
                            answer: Callable[[BlockStore, int], Encoded | None]) -> Any:
        """``answer(blocks, height)`` for the committed block at ``height`` (0: the latest); None where the log
        has no such block."""
        wanted = _height(params.get("height"))

        def read(snapshot: Snapshot) -> Encoded:
            height = wanted or snapshot.height
            # The block log holds a block before the state commits it: only committed heights are served.
            found = answer(snapshot.blocks, height) if height <= snapshot.height else None
            if found is None:
                raise _invalid(f"height {height} must be less than or equal to the current blockchain height "
                               f"{snapshot.height}")
            return found

        return await self._read(read)

    async def block(self, params: dict[str, Any], uri: bool) -> Any:
        def answer(blocks: BlockStore, height: int) -> Encoded | None:
            block = blocks.block(height)
            return None if block is None else Encoded.of(block_json(block))

        return await self._stored_block(params, answer)

    async def block_results(self, params: dict[str, Any], uri: bool) -> Any:
        """CometBFT 0.38's shape: each transaction's result, then the block's own (end-block) events. The log
        keeps it encoded (``node/results_json``) but for the height, which CometBFT writes first."""
        def answer(blocks: BlockStore, height: int) -> Encoded | None:
            results = blocks.results(height)
            return None if results is None else Encoded('{"height":"' + str(height) + '",' + results[1:])

        return await self._stored_block(params, answer)

    async def tx(self, params: dict[str, Any], uri: bool) -> Any:
        digest = _decode_hash(params.get("hash"))

        def read(snapshot: Snapshot) -> Encoded:
            try:
                found = snapshot.blocks.find_tx(digest)
            except BlockLogError as error:
                raise RPCError(INTERNAL_ERROR, "Internal error", str(error)) from None
            if found is None or found[0] > snapshot.height:
                raise RPCError(INTERNAL_ERROR, "Internal error", f"tx ({hex_upper(digest)}) not found")
            height, index, result = found
            block = snapshot.blocks.block(height)
            if block is None:
                raise RPCError(INTERNAL_ERROR, "Internal error", f"block {height} is missing")
            return Encoded('{"hash":"' + hex_upper(digest) + '","height":"' + str(height) + '","index":'
                           + str(index) + ',"tx_result":' + result + ',"tx":"' + b64(block.txs[index]) + '"}')

        return await self._read(read)


def _commit_answer(check: TxResult, result: TxResult, digest: bytes, height: int) -> Encoded:
    """broadcast_tx_commit's answer: the check, and the result in its block (empty, at height 0, if refused)."""
    return Encoded('{"check_tx":' + encode_tx_result(check) + ',"tx_result":' + encode_tx_result(result)
                   + ',"hash":"' + hex_upper(digest) + '","height":"' + str(height) + '"}')


class RPCServer:
    """Routes JSON-RPC calls to ``RPCMethods`` and websocket subscriptions to the node's event bus, within
    ``limits``. The signatures of a batch's broadcasts are checked in ``signature_workers`` processes first
    (node/sigverify.py; None: one per spare core, 0: none). ``close`` stops its query and signature workers."""

    def __init__(self, node: DevNode, limits: RPCLimits | None = None, signature_workers: int | None = None) -> None:
        self.node = node
        self.limits = limits or RPCLimits()
        self.verifier = SignatureVerifier(signature_workers, on_verified=node.metrics.worker_signatures.inc)
        self.queries = QueryPool(node.store, node.blocks, self.limits.query_workers, self.limits.max_pending_queries)
        self.methods = RPCMethods(node, self.queries, self.limits)
        self._names = {"health", "status", "abci_info", "abci_query", "broadcast_tx_sync", "broadcast_tx_async",
                       "broadcast_tx_commit", "num_unconfirmed_txs", "block", "block_results", "tx"}
        self._subscribing: set[int] = set()  # websockets (by id) that hold at least one subscription
        self._event_cache: OrderedDict[int, tuple[Any, str]] = OrderedDict()  # id(data) -> (data, its JSON)
        self.app = Starlette(routes=[
            Route("/", self.http_post, methods=["POST"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            WebSocketRoute("/websocket", self.websocket),
            Route("/{method}", self.http_get, methods=["GET"]),
        ])

    def close(self) -> None:
        self.queries.close()
        self.verifier.close()

    async def call(self, method: str, params: Any, uri: bool) -> Any:
        if method not in self._names:
            raise RPCError(METHOD_NOT_FOUND, "Method not found", f"unknown method '{str(method)[:64]}'")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise _invalid("params must be an object of named parameters")
        result = getattr(self.methods, method)(params, uri)
        if isinstance(result, Awaitable):
            result = await result
        return result

    async def _one(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id", -1) if isinstance(request, dict) else -1
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RPCError(INVALID_REQUEST, "Invalid Request", "expected {jsonrpc, id, method, params}")
            result = await self.call(request["method"], request.get("params"), uri=False)
            return {"jsonrpc": "2.0", "id": request_id, "result": result}
        except RPCError as error:
            return _error(request_id, error)
        except Exception:
            log.exception("RPC method %s failed", request.get("method") if isinstance(request, dict) else "?")
            return _error(request_id, RPCError(INTERNAL_ERROR, "Internal error", "the node failed to answer"))

    async def http_post(self, request: Request) -> Response:
        limit = self.limits.max_body_bytes
        body = await _read_bounded(request, limit)
        if body is None:  # the rest of the body is not read: the connection closes after this answer
            return _json(_error(-1, RPCError(INVALID_REQUEST, "Invalid Request",
                                             f"request body exceeds max_body_bytes ({limit} bytes)")), 413, close=True)
        try:
            payload = json.loads(body)
        except ValueError:
            return _json(_error(-1, RPCError(PARSE_ERROR, "Parse error", "body is not JSON")))
        if isinstance(payload, list):
            most = self.limits.max_request_batch_size
            if not payload:
                return _json(_error(-1, RPCError(INVALID_REQUEST, "Invalid Request", "empty batch request")))
            if len(payload) > most:
                return _json(_error(-1, RPCError(INVALID_REQUEST, "Invalid Request",
                                                 f"batch request exceeds maximum ({most}) allowed number of "
                                                 "requests (max_request_batch_size)")))
            txs = [_broadcast_tx(item) for item in payload]
            pending = self.verifier.check([tx for tx in txs if tx is not None])
            held = _SIGNATURES_HELD.set(pending.held)
            try:
                answers = []
                for index, (item, tx) in enumerate(zip(payload, txs, strict=True), 1):
                    if tx is not None:
                        await pending.settle(tx)
                    answers.append(await self._one(item))
                    if index % BATCH_ITEMS_PER_TURN == 0:
                        await asyncio.sleep(0)  # the loop may make a block within a long batch
            finally:
                _SIGNATURES_HELD.reset(held)
                pending.abandon()
            return _json(answers)
        return _json(await self._one(payload))

    async def http_get(self, request: Request) -> Response:
        method = request.path_params["method"]
        try:
            result = await self.call(method, dict(request.query_params), uri=True)
            return _json({"jsonrpc": "2.0", "id": -1, "result": result})
        except RPCError as error:
            return _json(_error(-1, error), 404 if error.code == METHOD_NOT_FOUND else 200)

    async def metrics(self, request: Request) -> Response:
        return Response(self.node.metrics.render(), media_type="text/plain; version=0.0.4")

    async def websocket(self, socket: WebSocket) -> None:
        await socket.accept()
        subscriptions: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}
        most = self.limits.max_websocket_message_bytes
        try:
            while True:
                message = await socket.receive_text()
                if len(message) > most:  # the server closes such a socket first; this holds under any server
                    await socket.send_text(json.dumps(_error(-1, RPCError(
                        LIMIT_EXCEEDED, "Limit exceeded",
                        f"websocket message exceeds max_websocket_message_bytes ({most} bytes)"))))
                    continue
                try:
                    request = json.loads(message)
                except ValueError:
                    await socket.send_text(json.dumps(_error(-1, RPCError(PARSE_ERROR, "Parse error", "not JSON"))))
                    continue
                await socket.send_text(encode_answer(await self._ws_request(socket, request, subscriptions)))
        except WebSocketDisconnect:
            pass
        finally:
            for subscription, task in subscriptions.values():
                task.cancel()
                self.node.events.unsubscribe(subscription)
            self._subscribing.discard(id(subscriptions))

    async def _ws_request(self, socket: WebSocket, request: Any,
                          subscriptions: dict[str, tuple[Subscription, asyncio.Task[None]]]) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error(-1, RPCError(INVALID_REQUEST, "Invalid Request", "expected a JSON-RPC object"))
        request_id = request.get("id", -1)
        method = request.get("method")
        params = request.get("params") or {}
        client = id(subscriptions)
        try:
            if method in ("subscribe", "unsubscribe") and not isinstance(params, dict):
                raise _invalid("params must be an object such as {\"query\": \"tm.event = 'NewBlock'\"}")
            if method == "subscribe":
                query = parse_query(params.get("query", ""))
                if query.text in subscriptions:
                    raise _invalid("already subscribed to this query")
                if not subscriptions and len(self._subscribing) >= self.limits.max_subscription_clients:
                    raise RPCError(LIMIT_EXCEEDED, "Limit exceeded",
                                   f"max_subscription_clients {self.limits.max_subscription_clients} reached")
                if len(subscriptions) >= self.limits.max_subscriptions_per_client:
                    raise RPCError(LIMIT_EXCEEDED, "Limit exceeded",
                                   f"max_subscriptions_per_client {self.limits.max_subscriptions_per_client} reached")
                subscription = self.node.events.subscribe(query)
                task = asyncio.create_task(self._forward(socket, request_id, subscription))
                subscriptions[query.text] = (subscription, task)
                self._subscribing.add(client)
                return {"jsonrpc": "2.0", "id": request_id, "result": {}}
            if method in ("unsubscribe", "unsubscribe_all"):
                texts = list(subscriptions) if method == "unsubscribe_all" else [params.get("query", "")]
                for text in texts:
                    if text not in subscriptions:
                        raise _invalid("subscription not found")
                    subscription, task = subscriptions.pop(text)
                    task.cancel()
                    self.node.events.unsubscribe(subscription)
                if not subscriptions:
                    self._subscribing.discard(client)
                return {"jsonrpc": "2.0", "id": request_id, "result": {}}
            return await self._one(request)
        except QueryError as error:
            return _error(request_id, _invalid(str(error)))
        except RPCError as error:
            return _error(request_id, error)

    def _encoded_event(self, events: EventMap, data: tuple[Any, ...]) -> str:
        """An event's ``"data"`` and ``"events"`` as JSON, encoded once however many subscribers receive it (a
        block of 10,000 transactions is megabytes of JSON; max_subscription_clients × max_subscriptions_per_client
        encodings of it would hold the loop for seconds)."""
        key = id(data)
        cached = self._event_cache.get(key)
        if cached is None or cached[0] is not data:
            text = ',"data":' + _event_data(data) + ',"events":' + json.dumps(events, separators=(",", ":"))
            cached = self._event_cache[key] = (data, text)
            while len(self._event_cache) > EVENT_CACHE_SIZE:
                self._event_cache.popitem(last=False)
        return cached[1]

    async def _forward(self, socket: WebSocket, request_id: Any, subscription: Subscription) -> None:
        head = ('{"jsonrpc":"2.0","id":' + json.dumps(request_id) + ',"result":{"query":'
                + json.dumps(subscription.query.text))
        while not subscription.dropped:
            events, data = await subscription.queue.get()
            await socket.send_text(head + self._encoded_event(events, data) + "}}")
        await socket.send_text(json.dumps(_error(request_id, RPCError(
            INTERNAL_ERROR, "Internal error", "subscription was cancelled: the client did not keep up"))))


def _event_data(data: tuple[Any, ...]) -> str:
    """A Tx or NewBlock event's data as CometBFT's JSON, from the results the devnode encoded for its block log."""
    if data[0] == "Tx":
        _, block, index, tx_result = data
        result_text: str = tx_result
        return ('{"type":"tendermint/event/Tx","value":{"TxResult":{"height":"' + str(block.header.height)
                + '","index":' + str(index) + ',"tx":"' + b64(block.txs[index]) + '","result":' + result_text + "}}}")
    _, block, encoded = data
    results: EncodedResults = encoded
    return ('{"type":"tendermint/event/NewBlock","value":' + json.dumps(block_json(block), separators=(",", ":"))[:-1]
            + ',"result_finalize_block":{"events":' + results.events + ',"tx_results":['
            + ",".join(results.tx_results) + '],"validator_updates":' + results.validator_updates
            + ',"app_hash":"' + results.app_hash + '"}}}')


class Encoded:
    """A result already encoded as JSON (by a query worker, or kept so in the block log), spliced into the answer
    as it is."""

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def of(cls, result: Any) -> Encoded:
        return cls(json.dumps(result, separators=(",", ":")))


def _error(request_id: Any, error: RPCError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id,
            "error": {"code": error.code, "message": error.message, "data": error.data}}


def _broadcast_tx(item: Any) -> bytes | None:
    """The transaction a batch item broadcasts; None if it is not a broadcast (or not one its method would take:
    its method refuses it)."""
    if (isinstance(item, dict) and isinstance(item.get("method"), str) and item["method"] in BROADCASTS
            and isinstance(item.get("params"), dict)):
        with contextlib.suppress(RPCError):
            return _decode_bytes(item["params"].get("tx"), "tx", uri=False)
    return None


def encode_answer(answer: dict[str, Any] | list[dict[str, Any]]) -> str:
    if isinstance(answer, list):
        if not any(isinstance(one.get("result"), Encoded) for one in answer):  # a batch of broadcasts, say:
            return json.dumps(answer, separators=(",", ":"))  # one call instead of one per answer (half the time)
        return "[" + ",".join(encode_answer(one) for one in answer) + "]"
    result = answer.get("result")
    if isinstance(result, Encoded):
        head = json.dumps({k: v for k, v in answer.items() if k != "result"}, separators=(",", ":"))
        return head[:-1] + ',"result":' + result.text + "}"
    return json.dumps(answer, separators=(",", ":"))


def _json(payload: Any, status: int = 200, close: bool = False) -> Response:
    headers = {"connection": "close"} if close else None
    return Response(encode_answer(payload), status_code=status, media_type="application/json", headers=headers)


async def _read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be longer than ``limit`` (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
