"""The async client that validators and gateways use to call miners: signs each request, checks each answer.

It sends through ``inference.http`` (keep-alive connections, httptools' C parser): per call it costs little more
than the two ed25519 operations a signed round trip needs on the caller's side (bench/miner_rpc.py).

A miner's announced URL is only a base: the fixed endpoint path is joined to it (``endpoint_url``), and every
connection goes through an ``AddressGuard`` (public addresses, or the exact ones in the operator's ``allow`` list).
Whatever a miner does wrong on the way (a URL that does not parse, an address refused, a connection that fails,
an answer past its byte bound) comes back as HttpError, never as another exception.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.endpoint_url import parse_endpoint_url
from gridmint.chain.errors import ChainError
from gridmint.client.signing import BODY, NONCE, SIGNATURE, SIGNER, sign_request, verify_answer
from gridmint.inference.address_guard import AddressGuard
from gridmint.inference.http import MAX_ANSWER_BYTES, MAX_STREAM_BYTES, HttpError, HttpPool, StreamingResponse

__all__ = ["Answer", "HttpError", "MinerClient", "MinerStream"]

MAX_EVENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    latency_s: float
    signed: bool  # True when the miner's signature over the body verified
    # When signed: the miner's answer headers and the nonce of the request it answered, which together let anyone
    # who knows the caller's address check that the miner sent this body (a gateway forwards them, see proof_headers)
    proof: dict[str, str] = field(default_factory=dict)

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
        except (ChainError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
            self.signed = False


@functools.lru_cache(maxsize=4_096)
def miner_url(base_url: str, path: str) -> str:
    """``path`` joined to the miner's announced base; HttpError if the base is not an endpoint URL."""
    try:
        return parse_endpoint_url(base_url, 256 + 64).join(path)
    except ValueError as error:
        raise HttpError(f"the miner's URL '{base_url[:100]!a}' is refused: {error}") from None


class MinerClient:
    """``allow``: the exact ``IP:port`` addresses of miners this caller may reach although they are not public
    (loopback, private, ...); every other connection must go to a public address."""

    def __init__(self, key: PrivateKey, timeout_s: float = 30.0, connections: int = 64, allow: Iterable[str] = (),
                 max_answer_bytes: int = MAX_ANSWER_BYTES, max_stream_bytes: int = MAX_STREAM_BYTES) -> None:
        self.key = key
        self.address = format_address(key.address)
        self.timeout_s = timeout_s
        self._pool = HttpPool(max_per_host=connections, guard=AddressGuard(allow), max_answer_bytes=max_answer_bytes,
                              max_stream_bytes=max_stream_bytes)

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
        response = await self._pool.post(miner_url(base_url, path), body, headers, timeout_s or self.timeout_s)
        latency = time.perf_counter() - started
        proof: dict[str, str] = {}
        if response.status == 200 and "text/event-stream" not in response.headers.get("content-type", ""):
            try:
                verify_answer(response.headers, response.body, miner, int(headers[NONCE]), self.address)
                proof = {name: response.headers[name] for name in (SIGNER, BODY, SIGNATURE)} | {NONCE: headers[NONCE]}
            except ChainError:  # an answer that does not verify counts as unsigned, which scores 0
                proof = {}
        return Answer(response.status, response.body, latency, bool(proof), proof)

    async def capabilities(self, base_url: str, timeout_s: float = 5.0) -> dict[str, dict[str, Any]]:
        """What the miner at ``base_url`` announces it serves besides plain text, per model (its public
        ``GET /v1/models``; a miner announcing nothing, or an answer that does not read, gives {})."""
        response = await self._pool.get(miner_url(base_url, "/v1/models"), timeout_s)
        try:
            listed = orjson.loads(response.body)["data"] if response.status == 200 else []
            return {str(m["id"]): dict(m["capabilities"]) for m in listed[:64]
                    if isinstance(m, dict) and isinstance(m.get("capabilities"), dict)}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return {}

    @contextlib.asynccontextmanager
    async def stream(self, base_url: str, path: str, miner: str, payload: dict[str, Any],
                     timeout_s: float | None = None, idle_s: float = 30.0) -> AsyncIterator[MinerStream]:
        """POST a streaming request; the MinerStream is handed back once the answer's head arrived."""
        body = orjson.dumps(payload)
        headers = sign_request(self.key, miner, body)
        headers["content-type"] = "application/json"
        async with self._pool.stream(miner_url(base_url, path), body, headers, timeout_s or self.timeout_s,
                                     idle_s) as response:
            yield MinerStream(response, miner, int(headers[NONCE]), self.address)
