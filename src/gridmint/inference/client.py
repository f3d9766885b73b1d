"""The async client that validators and gateways use to call miners: signs each request, checks each answer.

It sends through ``inference.http`` (keep-alive connections, httptools' C parser): per call it costs little more
than the two ed25519 operations a signed round trip needs on the caller's side (bench/miner_rpc.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.client.signing import BODY, NONCE, SIGNATURE, SIGNER, sign_request, verify_answer
from gridmint.inference.http import HttpError, HttpPool, StreamingResponse

__all__ = ["Answer", "HttpError", "MinerClient", "MinerStream"]

MAX_EVENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    latency_s: float
    signed: bool  # True when the miner's signature over the body verified

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class MinerStream:
    """A miner's SSE answer as it arrives. ``events()`` yields each event's bytes (``data: ...\n\n``) unchanged;
    once the stream ends, ``usage`` holds the final chunk's usage and ``signed`` whether the miner's signature
    over every byte before that chunk verified."""

    response: StreamingResponse
    miner: str
    nonce: int
    caller: str
    usage: dict[str, int] | None = None
    signed: bool = False
    done: bool = False
    _received: bytearray = field(default_factory=bytearray)

    @property
    def status(self) -> int:
        return self.response.status

    async def events(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in self.response.chunks():
            buffer += chunk
            if len(buffer) > MAX_EVENT_BYTES:
                raise HttpError(f"an event of the stream is larger than {MAX_EVENT_BYTES} bytes")
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                event += b"\n\n"
                if event.startswith(b"data: [DONE]"):
                    self.done = True
                elif b'"gridmint"' in event:  # the final chunk: usage, and the signature over what came before
                    self._check_final(event)
                self._received += event
                yield event

    def _check_final(self, event: bytes) -> None:
        try:
            final = orjson.loads(event[len(b"data: "):])
            proof = final["gridmint"]
            verify_answer({SIGNER: proof["signer"], SIGNATURE: proof["signature"], BODY: proof["body_sha256"]},
                          bytes(self._received), self.miner, self.nonce, self.caller)
            usage = final.get("usage") or {}
            self.usage = {k: int(usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens")}
            self.signed = True
        except (ChainError, ValueError, KeyError, TypeError):
            self.signed = False


class MinerClient:
    def __init__(self, key: PrivateKey, timeout_s: float = 30.0, connections: int = 64) -> None:
        self.key = key
        self.address = format_address(key.address)
        self.timeout_s = timeout_s
        self._pool = HttpPool(max_per_host=connections)

    async def __aenter__(self) -> MinerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pool.close()

    async def call(self, base_url: str, path: str, miner: str, payload: dict[str, Any],
                   timeout_s: float | None = None) -> Answer:
        """POST ``payload`` to the miner at ``base_url`` whose hotkey address is ``miner``. HTTP errors and bad
        signatures come back in the Answer (``signed`` tells); transport failures raise HttpError."""
        body = orjson.dumps(payload)
        headers = sign_request(self.key, miner, body)
        headers["content-type"] = "application/json"
        started = time.perf_counter()
        response = await self._pool.post(base_url + path, body, headers, timeout_s or self.timeout_s)
        latency = time.perf_counter() - started
        signed = False
        if response.status == 200 and "text/event-stream" not in response.headers.get("content-type", ""):
            try:
                verify_answer(response.headers, response.body, miner, int(headers[NONCE]), self.address)
                signed = True
            except ChainError:  # an answer that does not verify counts as unsigned, which scores 0
                signed = False
        return Answer(response.status, response.body, latency, signed)

    @contextlib.asynccontextmanager
    async def stream(self, base_url: str, path: str, miner: str, payload: dict[str, Any],
                     timeout_s: float | None = None, idle_s: float = 30.0) -> AsyncIterator[MinerStream]:
        """POST a streaming request; the MinerStream is handed back once the answer's head arrived."""
        body = orjson.dumps(payload)
        headers = sign_request(self.key, miner, body)
        headers["content-type"] = "application/json"
        async with self._pool.stream(base_url + path, body, headers, timeout_s or self.timeout_s, idle_s) as response:
            yield MinerStream(response, miner, int(headers[NONCE]), self.address)
