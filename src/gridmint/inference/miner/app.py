"""The miner's ASGI application.

Framework: a bare ASGI callable on uvicorn with httptools, no router or middleware. The miner's hot path is
signature check → backend → signed answer, and every microsecond of framework overhead is paid twice per
request by a 2-core validator or gateway machine; bench/miner_rpc.py measures what this buys.

Order for every model endpoint (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``): bounded body,
**signature** (client.signing.verify_request: signature, body hash, callee, nonce window), then the caller policy
and, for a gateway, its exposure (``protocol.CallerPolicy``; 402 ``gateway_exposure``), then the concurrency limit
("busy" with 503 and Retry-After), and only then the backend, under a time limit. Answers carry the miner's
signature over the request's nonce and the answer's hash; a stream ends with a chunk carrying usage and the
signature over every byte sent before it, then ``data: [DONE]``. What a gateway is answered is counted in the
miner's book (``miner.book``) before the answer leaves.

``POST /v1/forecast`` (prediction backends, ``inference/forecast_wire.py``) follows the same order; a gateway's
forecast is counted in numbers in and out (``forecast_wire.forecast_units``) where text counts tokens.

``POST /v1/receipts`` (signed, gateways only, never refused for exposure: asking for receipts is how a gateway
lowers it): the gateway's acknowledged cumulative receipts, at most ``MAX_RECEIPTS``; the miner answers, signed,
its signature or the reason it did not sign, for each in order (rules in ``miner.book``).
``/health`` and ``/v1/models`` are public; ``/metrics`` serves Prometheus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gridmint.chain.crypto import PrivateKey, format_address, parse_address
from gridmint.chain.errors import ChainError
from gridmint.chain.receipts import Receipt, gateway_acknowledged
from gridmint.chain.units import MAX_AMOUNT, MAX_U64
from gridmint.client.signing import BODY, NOT_PERMITTED, Caller, NonceWindow, http_status, sign_answer, verify_request
from gridmint.inference import forecast_wire, wire
from gridmint.inference.asgi import Job, Receive, Send, read_body, run_lifespan, send_raw
from gridmint.inference.backends.base import (
    ANY_MODALITY,
    EMBEDDING,
    TEXT_GENERATION,
    Backend,
    Generation,
    UnsupportedError,
)
from gridmint.inference.backends.forecast import STOP, ForecastBackend
from gridmint.inference.miner.book import Asked, ReceiptBook
from gridmint.inference.miner.metrics import MinerMetrics
from gridmint.inference.protocol import CallerPolicy, ExposureError

log = logging.getLogger("gridmint.miner")


MAX_BODY_BYTES = 1024 * 1024
SIGNED_HEADERS = (b"x-gm-caller", b"x-gm-callee", b"x-gm-nonce", b"x-gm-body", b"x-gm-signature")
JSON = (b"content-type", b"application/json")
RECEIPTS = "/v1/receipts"
MAX_RECEIPTS = 256
Handler = Callable[[Send, Any, Caller, bool], Awaitable[None]]


class RefusalError(Exception):
    """A request refused with an HTTP status and a plain code (the shape of "busy" and "oversize")."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class MinerApp:
    def __init__(self, key: PrivateKey, backend: Backend, policy: CallerPolicy, max_concurrency: int = 8,
                 request_timeout_s: float = 60.0, max_body_bytes: int = MAX_BODY_BYTES,
                 nonces: NonceWindow | None = None,
                 background: list[Job] | None = None, book: ReceiptBook | None = None, chain_id: str = "",
                 price_per_1k: int = 0) -> None:
        """``book``: where what gateways are served and the receipts signed are kept (default: in memory, for
        ``chain_id``; a book's own chain id wins). ``price_per_1k``: the miner's announced price, which weighs a
        gateway's exposure."""
        self.key = key
        self.address = format_address(key.address)
        self.backend = backend
        self.policy = policy
        self.max_concurrency = max_concurrency
        self.request_timeout_s = request_timeout_s
        self.max_body_bytes = max_body_bytes
        self.nonces = nonces or NonceWindow()
        self.book = book or ReceiptBook.in_memory(chain_id, key.address)
        self.chain_id = self.book.chain_id  # "" (unknown): receipts are refused
        self.price_per_1k = price_per_1k
        self.metrics = MinerMetrics()
        self.in_flight = 0
        self.background = background or []  # started at lifespan start-up (metagraph sync), cancelled at shutdown
        self._routes: dict[str, Handler] = {
            "/v1/chat/completions": self._chat, "/v1/completions": self._completion,
            "/v1/embeddings": self._embedding, RECEIPTS: self._receipts,
            forecast_wire.FORECAST_PATH: self._forecast,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self.background, on_shutdown=self._shutdown)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET":
            if path == "/health":
                await _respond(send, 200, {"status": "ok", "hotkey": self.address, "models": self.backend.models(),
                                           "in_flight": self.in_flight, "max_concurrency": self.max_concurrency})
            elif path == "/v1/models":
                await _respond(send, 200, wire.models_answer(self.backend.models(),
                                                             getattr(self.backend, "capabilities", None)))
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

    async def _shutdown(self) -> None:
        self.book.flush()

    async def _signed(self, scope: dict[str, Any], receive: Receive, send: Send, path: str,
                      handler: Handler) -> None:
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
            gateway = self.policy.check(caller.address)
            if path == RECEIPTS:
                if not gateway:
                    raise NOT_PERMITTED(f"{caller.address} is not a gateway: only gateways ask for receipts")
            elif gateway:
                self.policy.check_exposure(caller.address, self.book.exposure(caller.address))
        except ChainError as error:
            self.metrics.refused.labels(error.kind.name).inc()
            await _respond(send, http_status(error), wire.error_body(error.message, f"{error.module}/{error.kind.name}",
                                                                     "authentication_error"))
            return
        except ExposureError as error:
            self.metrics.refused.labels(error.code).inc()
            await _respond(send, 402, wire.error_body(str(error), error.code, "insufficient_quota"))
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
                await handler(send, parsed, caller, gateway)
        except RefusalError as refusal:
            status = refusal.status
            await _respond(send, status, wire.error_body(refusal.message, refusal.code))
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

    async def _chat(self, send: Send, body: Any, caller: Caller, gateway: bool) -> None:
        request, stream = wire.parse_chat(body)
        await self._generate(send, request, stream, caller, gateway, chat=True)

    async def _completion(self, send: Send, body: Any, caller: Caller, gateway: bool) -> None:
        request, stream = wire.parse_completion(body)
        await self._generate(send, request, stream, caller, gateway, chat=False)

    async def _generate(self, send: Send, request: Generation, stream: bool, caller: Caller, gateway: bool,
                        chat: bool) -> None:
        self._check_model(request.model, TEXT_GENERATION)
        request_id = f"gm-{caller.nonce}"
        if not stream:
            # n choices are n generations (seeded apart when the request is seeded): every backend can do that.
            results = [await self.backend.generate(request if index == 0 or request.seed is None else
                                                   dataclasses.replace(request, seed=request.seed + index))
                       for index in range(request.n)]
            answer = (wire.chat_answer if chat else wire.completion_answer)(request_id, request.model, results)
            usage = answer["usage"]
            self.metrics.prompt_tokens.inc(usage["prompt_tokens"])
            self.metrics.completion_tokens.inc(usage["completion_tokens"])
            if gateway:
                self.book.count(caller.address, usage["total_tokens"], self.price_per_1k)
            await self._signed_json(send, caller, answer)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        sent = bytearray()
        async for piece in self.backend.stream(request):
            payload = wire.chunk(request_id, request.model, piece, chat, first=not sent)
            if piece.finish_reason is not None:
                self.metrics.prompt_tokens.inc(piece.prompt_tokens)
                self.metrics.completion_tokens.inc(piece.completion_tokens)
                if gateway:
                    self.book.count(caller.address, piece.prompt_tokens + piece.completion_tokens, self.price_per_1k)
                # The signature covers every byte sent before this chunk, so the caller can prove the stream.
                signed = sign_answer(self.key, caller.nonce, caller.address, bytes(sent))
                payload["gridmint"] = {"signer": signed["x-gm-signer"], "body_sha256": signed[BODY],
                                       "signature": signed["x-gm-signature"]}
            event = b"data: " + orjson.dumps(payload) + b"\n\n"
            sent += event
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _embedding(self, send: Send, body: Any, caller: Caller, gateway: bool) -> None:
        model, inputs = wire.parse_embedding(body)
        self._check_model(model, EMBEDDING)
        result = await self.backend.embed(model, inputs)
        self.metrics.prompt_tokens.inc(result.prompt_tokens)
        if gateway:
            self.book.count(caller.address, result.prompt_tokens, self.price_per_1k)
        await self._signed_json(send, caller, wire.embedding_answer(model, result))

    async def _forecast(self, send: Send, body: Any, caller: Caller, gateway: bool) -> None:
        request = forecast_wire.parse_forecast_request(body)
        self._check_model(request.model, forecast_wire.PREDICTION)
        if not isinstance(self.backend, ForecastBackend):  # the echo backend claims every modality, not this one
            raise UnsupportedError("this miner serves no forecasts")
        stop = threading.Event()
        token = STOP.set(stop)  # to_thread copies the context: the backend sees this event
        try:
            forecasts = await asyncio.to_thread(self.backend.forecast, request)
        finally:
            stop.set()  # timed out or the caller left: the worker thread stops at its next series
            STOP.reset(token)
        if gateway:
            self.book.count(caller.address, forecast_wire.forecast_units(request), self.price_per_1k)
        await self._signed_json(send, caller, forecast_wire.forecast_answer(request.model, forecasts))

    async def _receipts(self, send: Send, body: Any, caller: Caller, gateway: bool) -> None:
        receipts, acks = self._parse_receipts(body, caller)
        # ed25519 checks release the GIL: up to 256 of them run beside the event loop, not in its way.
        verified = await asyncio.to_thread(
            lambda: [gateway_acknowledged(r, caller.public_key, a) for r, a in zip(receipts, acks, strict=True)])
        # Half the announced price is the floor: gateways pay the price in force, which after a raise is the old
        # one for the chain's price notice; a receipt paying less than that is not what the miner served.
        outcomes = self.book.sign(self.key, caller.address, caller.public_key,
                                  [Asked(r, a, ok) for r, a, ok in zip(receipts, acks, verified, strict=True)],
                                  floor_per_1k=self.price_per_1k // 2)
        for outcome in outcomes:
            self.metrics.receipts.labels(outcome.error or "signed").inc()
        await self._signed_json(send, caller, {"receipts": [
            {"signature": None if o.signature is None else o.signature.hex(), "error": o.error} for o in outcomes]})

    def _parse_receipts(self, body: Any, caller: Caller) -> tuple[list[Receipt], list[bytes]]:
        if not isinstance(body, dict) or not isinstance(body.get("chain_id"), str) or \
                not isinstance(body.get("receipts"), list):
            raise wire.BAD_REQUEST('expected {"chain_id": str, "receipts": [...]}')
        if not self.chain_id or body["chain_id"] != self.chain_id:
            raise RefusalError(400, "wrong_chain", (
                f"receipts for chain '{body['chain_id'][:64]}'; this miner signs for '{self.chain_id}'"
                if self.chain_id else "this miner does not know its chain id yet; it learns it from its node"))
        if len(body["receipts"]) > MAX_RECEIPTS:
            raise RefusalError(400, "too_many_receipts", f"{len(body['receipts'])} receipts in one request; at "
                               f"most {MAX_RECEIPTS}, send the rest in another")
        gateway, miner = parse_address(caller.address), self.key.address
        receipts, acks = [], []
        for index, item in enumerate(body["receipts"]):
            try:
                receipts.append(Receipt(self.chain_id, _whole(item["line"], 1, MAX_U64), gateway,
                                        parse_address(item["consumer"]), miner, _whole(item["tokens"], 0, MAX_U64),
                                        _whole(item["grains"], 0, MAX_AMOUNT), _whole(item["requests"], 0, MAX_U64)))
                ack = bytes.fromhex(item["ack"])
                if len(ack) != 64:
                    raise ValueError("an acknowledgement is 64 bytes")
                acks.append(ack)
            except (KeyError, TypeError, ValueError, AttributeError, ChainError):
                raise wire.BAD_REQUEST(
                    f"receipts[{index}]: expected {{line: 1..2^64-1, consumer: gm1 address, tokens and requests: "
                    "0..2^64-1, grains: 0..2^96-1, ack: 128 hex}") from None
        return receipts, acks


def _whole(value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"expected a whole number from {low} to {high}")
    return value


async def _respond(send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
                   ) -> None:
    await send_raw(send, status, orjson.dumps(payload), b"application/json", extra)
