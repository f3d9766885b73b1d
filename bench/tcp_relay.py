"""A transparent TCP relay: every byte from a caller goes to the target and back, nothing parsed, nothing added.

It is the floor of any extra hop written in Python on this machine (uvloop, protocol callbacks, one upstream
connection per caller connection). ``gateway_overhead.py`` runs signed miner calls through it beside the direct and
gateway paths, so a run shows how much of the gateway's cost is the hop itself and how much is its own work.

    .venv/bin/python bench/tcp_relay.py LISTEN_PORT TARGET_HOST TARGET_PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class _Upstream(asyncio.Protocol):
    """The relay's connection to the target: what it answers goes back to the caller."""

    def __init__(self, caller: asyncio.Transport) -> None:
        self.caller = caller

    def data_received(self, data: bytes) -> None:
        self.caller.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.caller.close()


class _Caller(asyncio.Protocol):
    """A caller's connection: opens its own upstream connection and forwards what the caller sends (held back
    until the upstream is connected)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.held: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        try:
            upstream, _ = await asyncio.get_running_loop().create_connection(
                lambda: _Upstream(self.transport), self.host, self.port)  # type: ignore[arg-type]
        except OSError:
            self.transport.close()
            return
        if self.transport.is_closing():
            upstream.close()
            return
        self.upstream = upstream
        for data in self.held:
            upstream.write(data)
        self.held.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.held.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def relay(listen_port: int, host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: _Caller(host, port), "127.0.0.1", listen_port,
                                                            backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(relay(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
