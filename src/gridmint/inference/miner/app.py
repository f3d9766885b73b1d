"""The miner's ASGI application.

Framework: a bare ASGI callable on uvicorn with httptools, no router or middleware. The miner's hot path is
signature check → backend → signed answer, and every microsecond of framework overhead is paid twice per
request by a 2-core validator or gateway machine; bench/miner_rpc.py measures what this buys.

Order for every model endpoint (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``): bounded body,
**signature** (client.signing.verify_request: signature, body hash, callee, nonce window), then the caller policy,
then the concurrency limit ("busy" with 503 and Retry-After), and only then the backend, under a time limit.
Answers carry the miner's signature over the request's nonce and the answer's hash; a stream ends with a chunk
carrying usage and the signature over every byte sent before it, then ``data: [DONE]``.
``/health`` and ``/v1/models`` are public; ``/metrics`` serves Prometheus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.client.signing import BODY, Caller, NonceWindow, http_status, sign_answer, verify_request
from gridmint.inference import wire
from gridmint.inference.asgi import Job, Receive, Send, read_body, run_lifespan, send_raw
from gridmint.inference.backends.base import (
    ANY_MODALITY,
    EMBEDDING,
    TEXT_GENERATION,
    Backend,
    Generation,
    UnsupportedError,
)
from gridmint.inference.miner.metrics import MinerMetrics
from gridmint.inference.protocol import CallerPolicy

log = logging.getLogger("gridmint.miner")


MAX_BODY_BYTES = 1024 * 1024
SIGNED_HEADERS = (b"x-gm-caller", b"x-gm-callee", b"x-gm-nonce", b"x-gm-body", b"x-gm-signature")
JSON = (b"content-type", b"application/json")


class MinerApp:
    def __init__(self, key: PrivateKey, backend: Backend, policy: CallerPolicy, max_concurrency: int = 8,
                 request_timeout_s: float = 60.0, max_body_bytes: int = MAX_BODY_BYTES,
                 nonces: NonceWindow | None = None,
                 background: list[Job] | None = None) -> None:
        self.key = key
        self.address = format_address(key.address)
        self.backend = backend
        self.policy = policy
        self.max_concurrency = max_concurrency
        self.request_timeout_s = request_timeout_s
        self.max_body_bytes = max_body_bytes
        self.nonces = nonces or NonceWindow()
        self.metrics = MinerMetrics()
        self.in_flight = 0
        self.background = background or []  # started at lifespan start-up (metagraph sync), cancelled at shutdown
        self._routes: dict[str, Callable[[Send, Any, Caller], Awaitable[None]]] = {
            "/v1/chat/completions": self._chat, "/v1/completions": self._completion,
            "/v1/embeddings": self._embedding,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self.background)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET":
            if path == "/health":
                await _respond(send, 200, {"status": "ok", "hotkey": self.address, "models": self.backend.models(),
                                           "in_flight": self.in_flight, "max_concurrency": self.max_concurrency})
            elif path == "/v1/models":
                await _respond(send, 200, wire.models_answer(self.backend.models()))
            elif path == "/metrics":
                await send_raw(send, 200, self.metrics.render(), b"text/plain; version=0.0.4")
            else:
                await _respond(send, 404, wire.error_body(f"no route GET {path}", "not_found"))
            return
        handler = self._routes.get(path)
        if method != "POST" or handler is None:
            await _respond(send, 404, wire.error_body(f"no route {method} {path}", "not_found"))
            return
        await self._signed(scope, receive, send, path, handler)

    async def _signed(self, scope: dict[str, Any], receive: Receive, send: Send, path: str,
                      handler: Callable[[Send, Any, Caller], Awaitable[None]]) -> None:
        started = time.perf_counter()
        body = await read_body(scope, receive, self.max_body_bytes)
        if body is None:
            self.metrics.refused.labels("oversize").inc()
            await _respond(send, 413, wire.error_body(f"body larger than {self.max_body_bytes} bytes", "oversize"))
            return
        headers = {name.decode(): value.decode("latin-1") for name, value in scope["headers"]
                   if name in SIGNED_HEADERS}
        try:
            caller = verify_request(headers, body, self.address, self.nonces)
            self.policy.check(caller.address)
        except ChainError as error:
            self.metrics.refused.labels(error.kind.name).inc()
            await _respond(send, http_status(error), wire.error_body(error.message, f"{error.module}/{error.kind.name}",
                                                                     "authentication_error"))
            return
        if self.in_flight >= self.max_concurrency:
            self.metrics.refused.labels("busy").inc()
            await _respond(send, 503, wire.error_body(
                f"miner is busy ({self.in_flight} requests in flight, the limit is {self.max_concurrency}); "
                "retry shortly or use another miner", "busy", "server_error"), extra=[(b"retry-after", b"1")])
            return
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        status = 200
        try:
            parsed = orjson.loads(body)
            async with asyncio.timeout(self.request_timeout_s):  # no extra task per request, unlike wait_for
                await handler(send, parsed, caller)
        except ChainError as error:
            status = 400
            await _respond(send, 400, wire.error_body(error.message, f"{error.module}/{error.kind.name}"))
        except orjson.JSONDecodeError:
            status = 400
            await _respond(send, 400, wire.error_body("body is not JSON", "bad_request"))
        except UnsupportedError as error:
            status = 400
            await _respond(send, 400, wire.error_body(str(error), "unsupported"))
        except TimeoutError:
            status = 504
            await _respond(send, 504, wire.error_body(f"the model did not answer within {self.request_timeout_s:g} s",
                                                      "timeout", "server_error"))
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)
            self.metrics.answered(path, status, time.perf_counter() - started)

    def _check_model(self, model: str, modality: str) -> None:
        if model not in self.backend.models():
            raise wire.BAD_REQUEST(f"model '{model[:64]}' is not served here; this miner serves "
                                   f"{', '.join(self.backend.models())}")
        if self.backend.modality not in (modality, ANY_MODALITY):
            raise UnsupportedError(f"this miner serves {self.backend.modality}, not {modality}")

    async def _signed_json(self, send: Send, caller: Caller, payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload)
        signature = sign_answer(self.key, caller.nonce, caller.address, body)
        await send_raw(send, 200, body, b"application/json",
                   [(name.encode(), value.encode()) for name, value in signature.items()])

    async def _chat(self, send: Send, body: Any, caller: Caller) -> None:
        request, stream = wire.parse_chat(body)
        await self._generate(send, request, stream, caller, chat=True)

    async def _completion(self, send: Send, body: Any, caller: Caller) -> None:
        request, stream = wire.parse_completion(body)
        await self._generate(send, request, stream, caller, chat=False)

    async def _generate(self, send: Send, request: Generation, stream: bool, caller: Caller, chat: bool) -> None:
        self._check_model(request.model, TEXT_GENERATION)
        request_id = f"gm-{caller.nonce}"
        if not stream:
            result = await self.backend.generate(request)
            self.metrics.prompt_tokens.inc(result.prompt_tokens)
            self.metrics.completion_tokens.inc(result.completion_tokens)
            answer = wire.chat_answer if chat else wire.completion_answer
            await self._signed_json(send, caller, answer(request_id, request.model, result))
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        sent = bytearray()
        async for piece in self.backend.stream(request):
            payload = wire.chunk(request_id, request.model, piece, chat)
            if piece.finish_reason is not None:
                self.metrics.prompt_tokens.inc(piece.prompt_tokens)
                self.metrics.completion_tokens.inc(piece.completion_tokens)
                # The signature covers every byte sent before this chunk, so the caller can prove the stream.
                signed = sign_answer(self.key, caller.nonce, caller.address, bytes(sent))
                payload["gridmint"] = {"signer": signed["x-gm-signer"], "body_sha256": signed[BODY],
                                       "signature": signed["x-gm-signature"]}
            event = b"data: " + orjson.dumps(payload) + b"\n\n"
            sent += event
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _embedding(self, send: Send, body: Any, caller: Caller) -> None:
        model, inputs = wire.parse_embedding(body)
        self._check_model(model, EMBEDDING)
        result = await self.backend.embed(model, inputs)
        self.metrics.prompt_tokens.inc(result.prompt_tokens)
        await self._signed_json(send, caller, wire.embedding_answer(model, result))




async def _respond(send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
                   ) -> None:
    await send_raw(send, status, orjson.dumps(payload), b"application/json", extra)

