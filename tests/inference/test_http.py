"""The small HTTP client under the validators and the gateway, against a hand-written loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gridmint.inference.http import HttpError, HttpPool

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _stream_through(script: Script, consume: Callable[[bytes], Awaitable[None]], idle_s: float) -> list[bytes]:
    """Serve one request with ``script`` on a loopback port; stream it, handing each chunk to ``consume``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)  # the body: b"{}"
        await script(writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = HttpPool()
    received: list[bytes] = []
    try:
        async with server, pool.stream(f"http://127.0.0.1:{port}/v1/x", b"{}", {}, 5, idle_s) as response:
            async for piece in response.chunks():
                received.append(piece)
                await consume(piece)
    finally:
        pool.close()
    return received


async def _nothing(_: bytes) -> None:
    return None


def test_a_stream_arrives_whole() -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: 1\n\n"))
        await asyncio.sleep(0.05)
        writer.write(chunk(b"data: 2\n\n") + b"0\r\n\r\n")

    received = asyncio.run(_stream_through(script, _nothing, idle_s=2))
    assert b"".join(received) == b"data: 1\n\ndata: 2\n\n"


def test_a_stream_that_goes_quiet_fails_after_the_idle_time() -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: 1\n\n"))
        await asyncio.sleep(3)  # then nothing, well past idle_s

    # The idle check's own error: the stream did not simply end when the server went away after 3 s.
    with pytest.raises(HttpError, match=r"sent nothing for 0\.3 s"):
        asyncio.run(_stream_through(script, _nothing, idle_s=0.3))


def test_time_the_caller_spends_between_chunks_does_not_count_as_idle() -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + b"".join(chunk(b"data: %d\n\n" % i) for i in range(3)) + b"0\r\n\r\n")
        await asyncio.sleep(1)

    async def slow(_: bytes) -> None:
        await asyncio.sleep(0.25)  # longer than idle_s, but the chunks are already there

    received = asyncio.run(_stream_through(script, slow, idle_s=0.1))
    assert len(b"".join(received).split(b"\n\n")) == 4
