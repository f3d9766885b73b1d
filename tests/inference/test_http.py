"""The small HTTP client under the validators and the gateway, against a hand-written loopback server."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

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


async def _answer_with(script: Script, pool: HttpPool, url: str = "") -> bytes:
    """POST once to a loopback server that runs ``script``; the unary answer's body."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await script(writer)
        except ConnectionError:
            pass  # the client hung up on an answer past its bound
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            response = await pool.post(url or f"http://127.0.0.1:{port}/v1/x", b"{}", {}, 5)
    finally:
        pool.close()
    return response.body


def test_answers_streams_and_heads_past_their_bounds_fail_as_http_errors() -> None:
    async def oversize(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000)
        await writer.drain()

    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for _ in range(10_000):  # far more than the bound; the client closes before the end
            writer.write(chunk(b"data: " + b"y" * 500 + b"\n\n"))
            await writer.drain()

    async def huge_head(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"z" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()

    with pytest.raises(HttpError, match="answer is larger than 4096 bytes"):
        asyncio.run(_answer_with(oversize, HttpPool(max_answer_bytes=4096)))
    with pytest.raises(HttpError, match="answer is larger than 4096 bytes"):  # chunked, never ending
        asyncio.run(_answer_with(endless, HttpPool(max_answer_bytes=4096)))
    with pytest.raises(HttpError, match="head is larger"):
        asyncio.run(_answer_with(huge_head, HttpPool()))
    with pytest.raises(HttpError, match="stream is larger than 8192 bytes"):
        asyncio.run(_stream_through_pool(endless, HttpPool(max_stream_bytes=8192)))


async def _stream_through_pool(script: Script, pool: HttpPool) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await script(writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with server, pool.stream(f"http://127.0.0.1:{port}/v1/x", b"{}", {}, 5, 5) as response:
            async for _ in response.chunks():
                pass
    finally:
        pool.close()


def test_https_is_spoken_with_tls_and_an_unverifiable_certificate_is_refused(tmp_path: Path) -> None:
    """A self-signed server: the client speaks TLS to it (the handshake happens) and refuses its certificate."""
    cert, private = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(private), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, private)

    async def scenario() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        pool = HttpPool()
        try:
            async with server:
                with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
                    await pool.post(f"https://127.0.0.1:{port}/v1/x", b"{}", {}, 5)
        finally:
            pool.close()

    asyncio.run(scenario())
