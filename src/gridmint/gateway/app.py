"""The gateway's ASGI application: OpenAI's API in front, signed calls to the best-ranked miners behind.

Framework: a bare ASGI callable on uvicorn, as the miner (no router or middleware on a path that every request
crosses twice). Order for the model endpoints: API key (401), rate limit per account (429), bounded body and its
shape (400, checked with the same parsers the miners use; a field they do not read is refused by name), the model
and its fallbacks (``models``; 404), the consumer's credit line (402), the miners priced at or below the line's
maximum that meet the request's ``provider`` preferences (capabilities included; 404), the worst case reserved
against the line (402: the prompt bound plus ``max_tokens`` (times ``n``) at the highest price among those miners,
and the line's fee), then the miners in order
(``routing``) until one answers with a signed 200 of the promised shape (``answers``; anything a miner gets wrong,
from a refused address to a malformed signed body, fails over to the next). Miners are sent the request as parsed
(``wire.generation_payload``), never the consumer's own JSON with fields no parser read. The reservation is replaced
by the real cost in the ledger once the answer is metered, or released if no miner answered. A failure before the
first byte reaches the consumer fails over to the next miner; a stream that breaks after that ends with an error
event ``data: {"error": {...}}`` and ``data: [DONE]``, and the consumer pays nothing for it (a miner is paid only
for a signed answer, and a broken stream carries no signature). Every paid answer is metered (``metering``) and
written to the ledger before its last byte is sent. Answers carry ``x-gridmint-request`` (the id the consumer finds
in ``GET /v1/usage``), and a unary answer ``x-gridmint-cost`` (grains) and ``x-gridmint-tokens``; the cost is also
in the answer's ``usage`` (``wire.with_cost``), and in a last chunk of a stream that asked for its usage. Answers also
carry the miner's proof: ``x-gm-nonce`` (the nonce of the gateway's request to the miner) and, on a unary answer,
the miner's ``x-gm-signer``, ``x-gm-body`` and ``x-gm-signature`` unchanged (a stream's final chunk carries its
own); with the gateway's address they show that the miner sent this body, which is how a validator probing through
the gateway knows the gateway did not write the answer itself (``validator.probes``).

``/v1/auth/*`` is rate-limited per client address and per account named; ``GET /v1/usage`` (Bearer key) lists the
consumer's metered requests and the miners' signed receipts the gateway settled for its lines.

Errors are OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from gridmint.chain.credit import compute_fee
from gridmint.chain.errors import ChainError
from gridmint.gateway import metering
from gridmint.gateway.answers import MalformedAnswerError, read_answer
from gridmint.gateway.credit import CreditBook, Line
from gridmint.gateway.keys import ApiKeys, key_message
from gridmint.gateway.ledger import MAX_ROW, Ledger, Usage
from gridmint.gateway.metrics import GatewayMetrics
from gridmint.gateway.routing import (
    BAD_PREFERENCES,
    Candidate,
    Directory,
    needed_capabilities,
    parse_models,
    parse_preferences,
)
from gridmint.inference import wire
from gridmint.inference.asgi import Job, Receive, Send, read_body, run_lifespan, send_raw
from gridmint.inference.client import HttpError, MinerClient

log = logging.getLogger("gridmint.gateway")


MAX_BODY_BYTES = 1024 * 1024
USAGE_PAGE = 1_000  # records per GET /v1/usage page
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
TIMEGPT_PATHS = ("/v2/models", "/model_params", "/v2/forecast")  # gateway/forecast.py: prediction subnets


class RateLimiter:
    """A token bucket per key (an account, a client address): ``rate`` requests per second, bursts up to ``burst``.
    At most ``max_keys`` buckets, the least recently used forgotten first (a forgotten bucket is a full one), so
    requests naming ever new keys cannot grow it without bound."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed


@dataclass(frozen=True)
class RefusalError(Exception):
    status: int
    message: str
    type: str
    code: str


def _error_body(message: str, kind: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


class GatewayApp:
    def __init__(self, address: str, miners: MinerClient, directory: Directory, keys: ApiKeys, ledger: Ledger,
                 credit: CreditBook, limiter: RateLimiter, timeout_s: float = 60.0, idle_s: float = 30.0,
                 background: list[Job] | None = None, auth_limiter: RateLimiter | None = None) -> None:
        self.address = address
        self.miners = miners
        self.directory = directory
        self.keys = keys
        self.ledger = ledger
        self.credit = credit
        self.limiter = limiter  # per account
        self.auth_limiter = auth_limiter or RateLimiter(1.0, 10)  # /v1/auth/*: per client address and per account
        self.timeout_s = timeout_s
        self.idle_s = idle_s
        self.metrics = GatewayMetrics()
        self.background = background or []

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self.background, self.miners.__aexit__)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        started = time.perf_counter()
        status = 200
        try:
            if method == "GET" and path == "/v1/models":
                await _json(send, 200, self._models())
            elif method == "GET" and path == "/health":
                await _json(send, 200, {"status": "ok", "gateway": self.address,
                                        "miners": len(self.directory.candidates)})
            elif method == "GET" and path == "/metrics":
                await send_raw(send, 200, self.metrics.render(), b"text/plain; version=0.0.4")
            elif method == "POST" and path in ("/v1/auth/challenge", "/v1/auth/key"):
                await self._auth(scope, receive, send, path)
            elif method == "GET" and path == "/v1/usage":
                await self._usage(scope, send)
            elif method == "POST" and path in MODEL_PATHS:
                status = await self._model_call(scope, receive, send, path)
            elif path in TIMEGPT_PATHS:
                from gridmint.gateway import forecast  # it imports this module, so it loads on first use

                status = await forecast.handle(self, scope, receive, send)
            else:
                raise RefusalError(404, f"no route {method} {path[:100]}", "invalid_request_error", "not_found")
        except RefusalError as refusal:
            status = refusal.status
            await send_raw(send, refusal.status, _error_body(refusal.message, refusal.type, refusal.code),
                       b"application/json")
        finally:
            self.metrics.answered(path if path in MODEL_PATHS else "other", status, time.perf_counter() - started)

    def _models(self) -> dict[str, Any]:
        """Every model and subnet served, with what its miners announce they serve besides plain text (a
        capability is listed when any of them announces it; ``provider.require_parameters`` picks those)."""
        data = []
        for model, modality in self.directory.models():
            announced: dict[str, Any] = {}
            for miner in self.directory.serving(model):
                for name, value in sorted(self.directory.capabilities.get(miner.hotkey, {}).items()):
                    announced[name] = announced.get(name) or value
            data.append({"id": model, "object": "model", "created": 0, "owned_by": "gridmint", "modality": modality,
                         **({"capabilities": announced} if announced else {})})
        return {"object": "list", "data": data}

    # --- API keys ------------------------------------------------------------------------------------------

    async def _auth(self, scope: dict[str, Any], receive: Receive, send: Send, path: str) -> None:
        client = scope.get("client")
        if not self.auth_limiter.allow(f"client:{client[0] if client else '?'}"):
            raise _auth_rate_limited(self.auth_limiter, "client address")
        body = await _json_body(scope, receive, 16 * 1024)
        address = body.get("address")
        if not isinstance(address, str):
            raise RefusalError(400, "expected {\"address\": \"gm1...\"}", "invalid_request_error", "bad_request")
        if not self.auth_limiter.allow(f"account:{address[:100]}"):
            raise _auth_rate_limited(self.auth_limiter, "account")
        try:
            if path == "/v1/auth/challenge":
                challenge = self.keys.challenge(address)
                await _json(send, 200, {"gateway": self.address, "address": address, "challenge": challenge,
                                        "message": key_message(self.address, address, challenge).decode()})
                return
            api_key = self.keys.issue(address, str(body.get("public_key", "")), str(body.get("signature", "")))
        except ChainError as error:
            status = 400 if error.kind.name == "bad_challenge" else 401
            raise RefusalError(status, error.message, "invalid_request_error", error.kind.name) from None
        log.info("Issued an API key to %s.", address)
        await _json(send, 200, {"api_key": api_key, "address": address})

    # --- usage ---------------------------------------------------------------------------------------------

    async def _usage(self, scope: dict[str, Any], send: Send) -> None:
        """``GET /v1/usage?line=&after=&limit=``: a page of the consumer's records (``after`` a row ``id``)."""
        consumer = self._consumer(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            line = int(query["line"][0]) if "line" in query else None
            after = int(query.get("after", ["0"])[0])
            limit = int(query.get("limit", [str(USAGE_PAGE)])[0])
        except ValueError:
            raise RefusalError(400, "line, after and limit are integers", "invalid_request_error",
                               "bad_request") from None
        # SQLite holds signed 64-bit integers: a larger number would raise inside the query, not refuse it.
        if not 1 <= limit <= USAGE_PAGE or not 0 <= after <= MAX_ROW or (line is not None and not 0 <= line <= MAX_ROW):
            raise RefusalError(400, f"expected 1 <= limit <= {USAGE_PAGE}, and after and line from 0 to {MAX_ROW}",
                               "invalid_request_error", "bad_request")
        await _json(send, 200, {"consumer": consumer, "gateway": self.address,
                                "usage": self.ledger.usage_of(consumer, line, after, limit),
                                "receipts": self.ledger.receipts_of(consumer)})

    # --- model calls ---------------------------------------------------------------------------------------

    def _consumer(self, scope: dict[str, Any]) -> str:
        api_key = _bearer(scope)
        if api_key is None:
            raise RefusalError(401, "no API key: send Authorization: Bearer <key> (get one with "
                                    "`gridmint gateway key`)", "invalid_request_error", "missing_api_key")
        consumer = self.keys.lookup(api_key)
        if consumer is None:
            raise RefusalError(401, "the API key is not valid for this gateway", "invalid_request_error",
                          "invalid_api_key")
        if not self.limiter.allow(consumer):
            raise RefusalError(429, f"rate limit: at most {self.limiter.rate:g} requests per second per account",
                          "rate_limit_error", "rate_limit_exceeded")
        return consumer

    async def _model_call(self, scope: dict[str, Any], receive: Receive, send: Send, path: str) -> int:
        consumer = self._consumer(scope)
        payload = await _json_body(scope, receive, MAX_BODY_BYTES)
        try:
            prefs = parse_preferences(payload.pop("provider", None))
            models = parse_models(payload.pop("models", None), payload.get("model"))
            if payload.pop("route", "fallback") != "fallback":
                raise BAD_PREFERENCES("route: only fallback (try the models in turn)")
            if models and payload.get("model") is None:
                payload["model"] = models[0]
            needs: frozenset[str] = frozenset()
            usage_chunk = wire.include_usage(payload)
            if path == "/v1/embeddings":
                model, inputs = wire.parse_embedding(payload)
                bound, stream, request = metering.embedding_bound(inputs), False, None
                forward = wire.embedding_payload(model, inputs)
            else:
                request, stream = (wire.parse_chat if path == "/v1/chat/completions" else wire.parse_completion)(
                    payload)
                model, bound = request.model, metering.prompt_bound(request)
                needs = needed_capabilities(request)
                forward = wire.generation_payload(request, stream)
        except ChainError as error:
            raise RefusalError(400, error.message, "invalid_request_error", error.kind.name) from None
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
            # A shape of request the parser's rules did not foresee: the consumer's fault, a 400, never a 500.
            log.warning("A request the parser did not foresee was refused (%s: %s).", type(error).__name__, error)
            raise RefusalError(400, f"the request could not be read ({type(error).__name__}); see the API "
                               "reference for the fields taken", "invalid_request_error", "bad_request") from None
        models = models or [model]
        serving = {name: self.directory.serving(name) for name in models}
        if not any(serving.values()):
            raise RefusalError(404, f"no miner serves the model '{model[:100]}'" +
                               (f" nor its fallbacks {', '.join(m[:100] for m in models[1:])}" if models[1:] else "")
                               + "; GET /v1/models lists what is served", "invalid_request_error", "model_not_found")
        line = await self.credit.line(consumer)
        if line is None or self.credit.room(consumer) <= 0:
            raise RefusalError(402, "your credit line with this gateway is spent, expired or closing (or there is "
                               "none); open or top it up with `gridmint credit`", "insufficient_quota",
                               "insufficient_credit")
        ordered: list[tuple[Candidate, str]] = []
        for name in models:  # every miner of the first model, then of the next: each billed at its own price
            ordered += [(c, name) for c in self.directory.order(serving[name], prefs, line.max_price_per_1k, needs)
                        if all(c.hotkey != taken.hotkey for taken, _ in ordered)]
        if not ordered:
            raise RefusalError(404, f"no miner of '{model[:100]}' meets the request's provider preferences at or "
                               f"below your line's maximum price ({line.max_price_per_1k} grains per 1k tokens)",
                               "invalid_request_error", "no_matching_miner")
        call = Call(consumer, line, secrets.token_hex(12), bound, request.max_tokens * request.n if request else 0)
        call.response_format, call.usage_chunk = request.response_format if request else None, usage_chunk
        worst = metering.cost(bound + call.max_tokens, max(c.price_per_1k for c, _ in ordered))
        reserved = None if worst > MAX_ROW else self.credit.reserve(consumer, worst, line.fee_bps)
        if reserved is None:
            raise RefusalError(402, f"this request may cost up to {worst} grains with the fee on top (its prompt and "
                               "max_tokens at the highest price it may be routed at); your line cannot pay that "
                               "now (other requests in flight hold part of it): lower max_tokens, wait, or top it up",
                               "insufficient_quota", "insufficient_credit")
        call.worst, call.reserved = worst, reserved
        try:
            if stream:
                return await self._stream(send, path, forward, ordered, call)
            return await self._unary(send, path, forward, ordered, call)
        finally:
            self.credit.release(consumer, call.reserved)  # what _meter has not released already (a failure)

    async def _unary(self, send: Send, path: str, payload: dict[str, Any], ordered: list[tuple[Candidate, str]],
                     call: Call) -> int:
        prompt_bound, max_tokens = call.prompt_bound, call.max_tokens
        for attempt, (miner, model) in enumerate(ordered):
            health = self.directory.health_of(miner.hotkey)
            try:
                answer = await self.miners.call(miner.url, path, miner.hotkey, _for(miner, payload, model),
                                                self.timeout_s)
                if answer.status != 200 or not answer.signed:
                    self._failed(miner, attempt, f"answered {answer.status}" + ("" if answer.signed else " unsigned"))
                    continue
                usage, text = read_answer(path, answer.body, len(payload.get("input", ())), call.response_format,
                                          max_tokens)
            except (HttpError, MalformedAnswerError) as error:
                self._failed(miner, attempt, str(error))
                continue
            except Exception as error:  # whatever else one miner's answer provokes: still that miner's failure
                self._failed(miner, attempt, f"{type(error).__name__}: {error}")
                continue
            health.success(answer.latency_s)
            prompt = metering.billed(_int(usage.get("prompt_tokens")), prompt_bound)
            completion = 0
            if path != "/v1/embeddings":
                bound = min(metering.text_bound(text), max_tokens)
                completion = metering.billed(_int(usage.get("completion_tokens")), bound)
                health.measured_throughput(completion, answer.latency_s)
            grains = self._meter(call, miner, prompt, completion)
            # The cost goes into the answer's usage as a suffix the miner's proof can be checked without
            # (wire.without_cost), so the x-gm-* headers still prove what the miner sent.
            body = wire.with_cost(answer.body, grains, compute_fee(grains, call.line.fee_bps)) or answer.body
            await send_raw(send, 200, body, b"application/json", [
                (b"x-gridmint-miner", miner.hotkey.encode()), (b"x-gridmint-cost", b"%d" % grains),
                (b"x-gridmint-tokens", b"%d" % (prompt + completion)), (b"x-gridmint-request", call.request.encode()),
                *((name.encode(), value.encode()) for name, value in answer.proof.items())])
            return 200
        raise RefusalError(503, f"none of the {len(ordered)} miners serving this model answered; try again shortly",
                      "server_error", "no_miner_available")

    async def _stream(self, send: Send, path: str, payload: dict[str, Any], ordered: list[tuple[Candidate, str]],
                      call: Call) -> int:
        chat = path == "/v1/chat/completions"
        prompt_bound, max_tokens = call.prompt_bound, call.max_tokens
        for attempt, (miner, model) in enumerate(ordered):
            health = self.directory.health_of(miner.hotkey)
            started_at = time.perf_counter()
            sent_head = False
            content_bytes = 0
            try:
                async with self.miners.stream(miner.url, path, miner.hotkey, _for(miner, payload, model),
                                              self.timeout_s, self.idle_s) as sse:
                    if sse.status != 200:
                        self._failed(miner, attempt, f"answered {sse.status}")
                        continue
                    async for event in sse.events():
                        if not sent_head:
                            await send({"type": "http.response.start", "status": 200, "headers": [
                                (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                                (b"x-gridmint-miner", miner.hotkey.encode()),
                                (b"x-gridmint-request", call.request.encode()), (b"x-gm-nonce", b"%d" % sse.nonce)]})
                            sent_head = True
                            health.success(time.perf_counter() - started_at)
                        if event.startswith(b"data: [DONE]"):
                            continue  # sent once the usage is in the ledger, below
                        content_bytes += _content_bytes(event, chat)
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                    if not sse.done or not sse.signed or sse.usage is None:
                        raise HttpError("the stream ended without a signed final chunk and [DONE]")
                    usage = sse.usage
            except HttpError as error:
                if not sent_head:
                    self._failed(miner, attempt, str(error))
                    continue
                health.failure()
                self.metrics.broken_streams.inc()
                log.warning("Miner %s broke a stream after the first token (%s); the consumer is not charged.",
                            miner.hotkey, error)
                await send({"type": "http.response.body", "more_body": False, "body": b"data: " + _error_body(
                    f"the miner failed mid-stream ({error}); what was sent is not charged", "server_error",
                    "miner_failed_mid_stream") + b"\n\ndata: [DONE]\n\n"})
                return 200
            prompt = metering.billed(usage.get("prompt_tokens"), prompt_bound)
            completion = metering.billed(usage.get("completion_tokens"), min(content_bytes + 4, max_tokens))
            health.measured_throughput(completion, time.perf_counter() - started_at)
            grains = self._meter(call, miner, prompt, completion)
            tail = b""
            if call.usage_chunk:  # OpenAI's stream_options.include_usage: a last chunk of no choices and the usage
                tail = b"data: " + orjson.dumps({
                    "id": call.request, "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": int(time.time()), "model": model, "choices": [],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion,
                              **wire.usage_cost(grains, compute_fee(grains, call.line.fee_bps))}}) + b"\n\n"
            await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n", "more_body": False})
            return 200
        raise RefusalError(503, f"none of the {len(ordered)} miners serving this model answered; try again shortly",
                      "server_error", "no_miner_available")

    def _failed(self, miner: Candidate, attempt: int, why: str) -> None:
        self.directory.health_of(miner.hotkey).failure()
        self.metrics.failovers.inc()
        log.warning("Miner %s (subnet %d, UID %d) failed (%s); trying the next one.", miner.hotkey, miner.netuid,
                    miner.uid, why)

    def _meter(self, call: Call, miner: Candidate, prompt: int, completion: int) -> int:
        """Record the answer's cost, never above what was reserved for it (a miner's price is at most the one the
        reservation used, and the counts at most its bounds; the clamp keeps that true whatever changes)."""
        grains = min(metering.cost(prompt + completion, miner.price_per_1k), call.worst)
        self.ledger.record(Usage(call.request, call.consumer, call.line.id, miner.hotkey, prompt + completion, grains,
                                 call.line.fee_bps))
        self.credit.release(call.consumer, call.reserved)  # in the same turn: the ledger owes it now instead
        call.reserved = 0
        self.metrics.prompt_tokens.inc(prompt)
        self.metrics.completion_tokens.inc(completion)
        self.metrics.metered.inc(grains)
        return grains


class Call:
    """One model call as admitted: whose line pays, its request id, the bounds it is metered within and the most
    it may cost (what was reserved, before the fee)."""

    __slots__ = ("consumer", "line", "max_tokens", "prompt_bound", "request", "reserved", "response_format",
                 "usage_chunk", "worst")

    def __init__(self, consumer: str, line: Line, request: str, prompt_bound: int, max_tokens: int) -> None:
        self.consumer, self.line, self.request = consumer, line, request
        self.prompt_bound, self.max_tokens, self.worst, self.reserved = prompt_bound, max_tokens, 0, 0
        self.response_format: dict[str, Any] | None = None  # a unary answer must be what it asks for
        self.usage_chunk = False  # the stream ends with a chunk of usage and cost


def _auth_rate_limited(limiter: RateLimiter, per: str) -> RefusalError:
    return RefusalError(429, f"too many key requests: at most {limiter.rate:g} per second per {per} (bursts of "
                        f"{limiter.burst})", "rate_limit_error", "rate_limit_exceeded")


def _for(miner: Candidate, payload: dict[str, Any], model: str) -> dict[str, Any]:
    """The request as this miner takes it: for ``model`` (one of a fallback list), and a subnet name
    (``subnet-<n>``) becomes the miner's own model."""
    if model not in miner.models and miner.models:
        model = miner.models[0]
    return payload if payload["model"] == model else {**payload, "model": model}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _content_bytes(event: bytes, chat: bool) -> int:
    """Bytes of generated text in one SSE event (0 for [DONE] or anything unreadable)."""
    if not event.startswith(b"data: {"):
        return 0
    try:
        choice = (orjson.loads(event[6:]).get("choices") or [{}])[0]
    except (orjson.JSONDecodeError, AttributeError, IndexError, KeyError, TypeError):
        return 0
    if not chat:
        text = choice.get("text")
        return len(text.encode()) if isinstance(text, str) else 0
    delta = choice.get("delta") or {}
    text = delta.get("content")
    size = len(text.encode()) if isinstance(text, str) else 0
    for call in delta.get("tool_calls") or () if isinstance(delta.get("tool_calls"), list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        for part in (function.get("name"), function.get("arguments")) if isinstance(function, dict) else ():
            size += len(part.encode()) if isinstance(part, str) else 0
    return size


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


async def _json_body(scope: dict[str, Any], receive: Receive, limit: int) -> dict[str, Any]:
    body = await read_body(scope, receive, limit)
    if body is None:
        raise RefusalError(413, f"the body is larger than {limit} bytes", "invalid_request_error", "body_too_large")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RefusalError(400, "the body is not JSON", "invalid_request_error", "bad_request") from None
    if not isinstance(parsed, dict):
        raise RefusalError(400, "expected a JSON object", "invalid_request_error", "bad_request")
    return parsed


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    await send_raw(send, status, orjson.dumps(payload), b"application/json")
