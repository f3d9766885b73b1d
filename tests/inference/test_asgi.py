"""The miner's transport gathers the writes of one event-loop turn into one send, and loses none on close."""

from __future__ import annotations

import asyncio

from gridmint.inference.asgi import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_in_one_turn_leave_as_one() -> None:
    async def scenario() -> RecordingTransport:
        inner = RecordingTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"ok")
        assert inner.writes == []
        await asyncio.sleep(0)
        transport.write(b"next turn")
        transport.close()  # flushes what is pending first
        assert transport.get_extra_info("peername") == "info:peername"
        return inner

    inner = asyncio.run(scenario())
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b"next turn"] and inner.closed
