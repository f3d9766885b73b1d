"""A small keep-alive HTTP/1.1 client on asyncio protocols with httptools' C parser.

Validators and gateways make many small signed calls to miners; a general client (aiohttp, httpx) spends more
per request in Python than the ed25519 work the call needs. This one does only what those calls need: POST a
body, read one response, reuse the connection. Connections are pooled per scheme, host and port, bounded, and
closed when a response is malformed, the server closes, or a call times out.

URLs are read as the chain reads announced endpoints (``chain.endpoint_url``: no userinfo, query or fragment), an
https URL is dialled with TLS and the server's certificate verified against its host name, and with an
``AddressGuard`` (calls to miners) every new connection goes to the address the guard checked. Everything the
server sends is bounded: the head, a unary body (``max_answer_bytes``) and a stream (``max_stream_bytes``); past a
bound the call fails with HttpError and its connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httptools

from gridmint.chain.endpoint_url import parse_endpoint_url

if TYPE_CHECKING:
    from gridmint.inference.address_guard import AddressGuard

MAX_URL_BYTES = 2_048  # an announced base (256 bytes on chain) and the fixed path joined to it
MAX_HEAD_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # 256 embeddings of 3,072 dimensions fit, as JSON
MAX_STREAM_BYTES = 16 * 1024 * 1024
Target = tuple[str, str, int]  # scheme, host, port: what a connection is pooled under


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class HttpError(Exception):
    """The call failed on the way (refused, reset, malformed, timed out); the message says which."""


class StreamingResponse:
    """A response whose head has arrived; ``chunks()`` yields its body as it comes, each within ``idle_s`` of
    asking for it (time the caller spends between chunks does not count)."""

    def __init__(self, status: int, headers: dict[str, str], queue: asyncio.Queue[bytes | HttpError | None],
                 idle_s: float) -> None:
        self.status, self.headers, self._queue, self._idle_s = status, headers, queue, idle_s
        self.complete = False
        self._waiting_since: float | None = None  # loop time the caller started waiting for a chunk
        self._watchdog: asyncio.TimerHandle | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        # One timer per idle period, armed when the caller waits and none is, instead of a timeout around every
        # chunk: a stream of tokens would otherwise create, schedule and cancel a timer per token.
        loop = asyncio.get_running_loop()
        try:
            while not self.complete:
                self._waiting_since = loop.time()
                if self._watchdog is None:
                    self._watchdog = loop.call_later(self._idle_s, self._check_idle, loop)
                item = await self._queue.get()
                self._waiting_since = None
                if item is None:
                    self.complete = True
                    return
                if isinstance(item, HttpError):
                    raise item
                yield item
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

    def _check_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        if self._waiting_since is None:
            return  # the caller is busy with a chunk (or gone): its next wait arms the watchdog again
        waited = loop.time() - self._waiting_since
        if waited >= self._idle_s:  # the queue has been empty all the time the caller waited
            self._queue.put_nowait(HttpError(f"the stream sent nothing for {self._idle_s:g} s"))
        else:
            self._watchdog = loop.call_later(self._idle_s - waited, self._check_idle, loop)


class _Connection(asyncio.Protocol):
    def __init__(self, max_answer_bytes: int = MAX_ANSWER_BYTES, max_stream_bytes: int = MAX_STREAM_BYTES) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._head: asyncio.Future[tuple[int, dict[str, str]]] | None = None  # streaming calls only
        self._chunks: asyncio.Queue[bytes | HttpError | None] | None = None
        self.usable = True
        self._broken = False  # a bound was passed or the parser failed: what else arrives is ignored
        self._max_answer_bytes, self._max_stream_bytes = max_answer_bytes, max_stream_bytes
        self._head_bytes = 0
        self._body_bytes = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._break(HttpError(f"malformed HTTP response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection closed by the server{': ' + str(exc) if exc else ''}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._broken:
            return
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._break(HttpError(f"the answer's head is larger than {MAX_HEAD_BYTES} bytes"))
            return
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result((self._parser.get_status_code(), self._headers))

    def on_body(self, body: bytes) -> None:
        if self._broken:
            return
        self._body_bytes += len(body)
        limit = self._max_stream_bytes if self._chunks is not None else self._max_answer_bytes
        if self._body_bytes > limit:
            what = "stream" if self._chunks is not None else "answer"
            self._break(HttpError(f"the {what} is larger than {limit} bytes"))
        elif self._chunks is not None:
            self._chunks.put_nowait(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._broken:
            return
        self._head_bytes = self._body_bytes = 0
        if not self._parser.should_keep_alive():
            self.usable = False
        if self._chunks is not None:
            self._chunks.put_nowait(None)
            self._chunks, self._head, self._headers = None, None, {}
            return
        response = Response(self._parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body = {}, []
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(response)

    def _break(self, error: HttpError) -> None:
        """Stop reading this connection: the call fails with ``error`` and the connection closes."""
        self._broken = True
        self._fail(error)
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: HttpError) -> None:
        self.usable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if self._chunks is not None:
            self._chunks.put_nowait(error)

    async def exchange(self, request: bytes) -> Response:
        if self.transport is None or self.transport.is_closing():
            raise HttpError("connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter

    async def exchange_streaming(self, request: bytes) -> tuple[int, dict[str, str],
                                                               asyncio.Queue[bytes | HttpError | None]]:
        if self.transport is None or self.transport.is_closing():
            raise HttpError("connection is closed")
        self._head = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[bytes | HttpError | None] = asyncio.Queue()
        self._chunks = chunks
        self.transport.write(request)
        status, headers = await self._head
        return status, headers, chunks

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()


@functools.lru_cache(maxsize=4_096)  # callers talk to the same few hundred miners over and over
def _target(url: str) -> tuple[Target, str, str]:
    try:
        parts = parse_endpoint_url(url, MAX_URL_BYTES)
    except ValueError as error:
        raise HttpError(f"cannot call '{url[:100]!a}': {error}") from None
    return (parts.scheme, parts.host, parts.port), parts.authority, parts.path or "/"


def _request(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> tuple[Target, str, bytes]:
    target, netloc, path = _target(url)
    head = [f"{method} {path} HTTP/1.1", f"Host: {netloc}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    try:
        encoded = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise HttpError("a request header holds characters outside Latin-1") from None
    return target, netloc, encoded + body


class HttpPool:
    """``guard`` checks the address of every new connection (calls to miners); None connects wherever the URL
    says (callers that dial their own, known services: benchmarks, tests)."""

    def __init__(self, max_per_host: int = 64, guard: AddressGuard | None = None,
                 max_answer_bytes: int = MAX_ANSWER_BYTES, max_stream_bytes: int = MAX_STREAM_BYTES) -> None:
        self.max_per_host = max_per_host
        self.guard = guard
        self.max_answer_bytes, self.max_stream_bytes = max_answer_bytes, max_stream_bytes
        self._idle: dict[Target, list[_Connection]] = defaultdict(list)
        self._open: dict[Target, int] = defaultdict(int)
        self._slots: dict[Target, asyncio.Semaphore] = {}
        self._tls: ssl.SSLContext | None = None

    async def get(self, url: str, timeout_s: float) -> Response:
        return await self.post(url, b"", {}, timeout_s, method="GET")

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float, method: str = "POST"
                   ) -> Response:
        address, netloc, request = _request(url, body, headers, method)
        slot = self._slots.setdefault(address, asyncio.Semaphore(self.max_per_host))
        async with slot:
            connection = await self._acquire(address, timeout_s)
            try:
                async with asyncio.timeout(timeout_s):
                    response = await connection.exchange(request)
            except TimeoutError:
                connection.close()
                raise HttpError(f"no answer from {netloc} within {timeout_s:g} s") from None
            except HttpError:
                connection.close()
                raise
            finally:
                self._release(address, connection)
        return response

    @contextlib.asynccontextmanager
    async def stream(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float,
                     idle_s: float) -> AsyncIterator[StreamingResponse]:
        """POST and hand back the response once its head arrives (within ``timeout_s``); the body then streams,
        each piece within ``idle_s``. A stream left unfinished closes its connection."""
        address, netloc, request = _request(url, body, headers)
        slot = self._slots.setdefault(address, asyncio.Semaphore(self.max_per_host))
        async with slot:
            connection = await self._acquire(address, timeout_s)
            response: StreamingResponse | None = None
            try:
                async with asyncio.timeout(timeout_s):
                    status, answer_headers, chunks = await connection.exchange_streaming(request)
                response = StreamingResponse(status, answer_headers, chunks, idle_s)
                yield response
            except TimeoutError:
                raise HttpError(f"no answer from {netloc} within {timeout_s:g} s") from None
            finally:
                if response is None or not response.complete:
                    connection.close()
                self._release(address, connection)

    async def _acquire(self, address: Target, timeout_s: float) -> _Connection:
        idle = self._idle[address]
        while idle:
            connection = idle.pop()
            if connection.usable and connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._open[address] -= 1
        scheme, host, port = address
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()

        def protocol() -> _Connection:
            return _Connection(self.max_answer_bytes, self.max_stream_bytes)

        try:
            async with asyncio.timeout(timeout_s):
                # The guard's checked address is the one dialled; TLS still verifies the certificate for the name.
                ip = host if self.guard is None else await self.guard.resolve(host, port)
                _, connection = await loop.create_connection(protocol, ip, port, ssl=tls,
                                                             server_hostname=host if tls else None)
        except (OSError, TimeoutError, UnicodeError) as error:
            raise HttpError(f"cannot connect to {host[:100]}:{port}: {error}") from None
        self._open[address] += 1
        return connection

    def _release(self, address: Target, connection: _Connection) -> None:
        if connection.usable and connection.transport is not None and not connection.transport.is_closing():
            self._idle[address].append(connection)
        else:
            connection.close()
            self._open[address] -= 1

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
