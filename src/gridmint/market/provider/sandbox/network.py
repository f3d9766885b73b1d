"""Reaching a workload inside its own network namespace, where it sees only its own loopback.

The sandbox has no interface but ``lo``: it cannot reach the host, the node's RPC or another lease, and nothing
can reach it except the provider. The provider reaches it by creating a socket *inside* the lease's namespace: a
short-lived thread joins the namespace (``setns``; the thread's namespace changes, no other thread's), creates the
socket and exits; the socket stays bound to the lease's network after that and is used from anywhere. The
namespace is held open by a file descriptor taken when the lease starts, so it can never be swapped for another.

``NamespaceTransport`` is the httpx transport the proxy uses for a lease: httpcore's connection pool over
connections made this way.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import ssl
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpcore
import httpx

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT_S = 5.0
_libc = ctypes.CDLL(None, use_errno=True)


class LeaseNetwork:
    """A lease's network namespace, held by a file descriptor until ``close``."""

    def __init__(self, pid: int) -> None:
        self._fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def new_socket(self) -> socket.socket:
        made: list[socket.socket | OSError] = []

        def inside() -> None:
            if _libc.setns(self._fd, CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                made.append(OSError(code, f"cannot enter the lease's network namespace: {os.strerror(code)}"))
                return
            made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))

        thread = threading.Thread(target=inside, name="lease-netns", daemon=True)
        thread.start()
        thread.join()
        result = made[0] if made else OSError("the namespace thread made no socket")
        if isinstance(result, OSError):
            raise result
        return result

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self.new_socket()
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError:
            raise httpcore.ReadTimeout("the workload did not answer in time") from None
        except (OSError, anyio.BrokenResourceError) as error:
            raise httpcore.ReadError(str(error)) from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            with anyio.fail_after(timeout):
                await self._stream.send(buffer)
        except TimeoutError:
            raise httpcore.WriteTimeout("the workload did not read in time") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
            raise httpcore.WriteError(str(error)) from None

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the proxy speaks plain HTTP to a workload")

    def get_extra_info(self, info: str) -> Any:
        return None


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, network: LeaseNetwork) -> None:
        self.network = network

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        # Only making the socket needs a thread (it must enter the namespace); the connect itself waits on the event
        # loop, so a workload that never accepts holds no thread, only its own request, for the timeout.
        sock = await anyio.to_thread.run_sync(self.network.new_socket)
        try:
            sock.setblocking(False)
            error = sock.connect_ex((host, port))
            if error == errno.EINPROGRESS:
                with anyio.fail_after(min(timeout or CONNECT_TIMEOUT_S, CONNECT_TIMEOUT_S)):
                    await anyio.wait_writable(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise httpcore.ConnectError(f"the workload refused port {port}: {os.strerror(error)}")
            return _Stream(await anyio.abc.SocketStream.from_socket(sock))
        except TimeoutError:
            sock.close()
            raise httpcore.ConnectTimeout(f"the workload did not accept on port {port} in time") from None
        except BaseException:
            sock.close()
            raise

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a lease is reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except httpcore.ReadTimeout as error:
            raise httpx.ReadTimeout(str(error)) from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise httpx.ReadError(str(error)) from None

    async def aclose(self) -> None:
        await self._stream.aclose()


class NamespaceTransport(httpx.AsyncBaseTransport):
    """httpx's transport for one lease: plain HTTP/1.1 to sockets made inside the lease's network namespace."""

    def __init__(self, network: LeaseNetwork, max_connections: int = 32) -> None:
        self._pool = httpcore.AsyncConnectionPool(network_backend=_Backend(network), max_connections=max_connections,
                                                  keepalive_expiry=5.0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(method=request.method, url=httpcore.URL(
            scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
            target=request.url.raw_path), headers=request.headers.raw, content=request.stream,
            extensions=request.extensions)
        try:
            answer = await self._pool.handle_async_request(core)
        except httpcore.TimeoutException as error:
            raise httpx.TimeoutException(str(error), request=request) from None
        except httpcore.ConnectError as error:
            raise httpx.ConnectError(str(error), request=request) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as error:
            raise httpx.TransportError(str(error), request=request) from None
        return httpx.Response(answer.status, headers=answer.headers, stream=_ResponseStream(answer.stream),
                              extensions=answer.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()
