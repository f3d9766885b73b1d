"""A small keep-alive HTTP/1.1 client on asyncio protocols with httptools' C parser.

Validators and gateways make many small signed calls to miners; a general client (aiohttp, httpx) spends more
per request in Python than the ed25519 work the call needs. This one does only what those calls need: POST a
body, read one response, reuse the connection. Connections are pooled per host and port, bounded, and closed
when a response is malformed, the server closes, or a call times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools


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
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._head: asyncio.Future[tuple[int, dict[str, str]]] | None = None  # streaming calls only
        self._chunks: asyncio.Queue[bytes | HttpError | None] | None = None
        self.usable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(HttpError(f"malformed HTTP response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection closed by the server{': ' + str(exc) if exc else ''}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result((self._parser.get_status_code(), self._headers))

    def on_body(self, body: bytes) -> None:
        if self._chunks is not None:
            self._chunks.put_nowait(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
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
def _target(url: str) -> tuple[tuple[str, int], str, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise HttpError(f"only http:// URLs are supported here, got {url[:100]}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.hostname, parts.port or 80), parts.netloc, path


def _request(url: str, body: bytes, headers: dict[str, str]) -> tuple[tuple[str, int], str, bytes]:
    address, netloc, path = _target(url)
    head = [f"POST {path} HTTP/1.1", f"Host: {netloc}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return address, netloc, ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class HttpPool:
    def __init__(self, max_per_host: int = 64) -> None:
        self.max_per_host = max_per_host
        self._idle: dict[tuple[str, int], list[_Connection]] = defaultdict(list)
        self._open: dict[tuple[str, int], int] = defaultdict(int)
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Response:
        address, netloc, request = _request(url, body, headers)
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

    async def _acquire(self, address: tuple[str, int], timeout_s: float) -> _Connection:
        idle = self._idle[address]
        while idle:
            connection = idle.pop()
            if connection.usable and connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._open[address] -= 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, connection = await loop.create_connection(_Connection, *address)
        except (OSError, TimeoutError) as error:
            raise HttpError(f"cannot connect to {address[0]}:{address[1]}: {error}") from None
        self._open[address] += 1
        return connection

    def _release(self, address: tuple[str, int], connection: _Connection) -> None:
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
