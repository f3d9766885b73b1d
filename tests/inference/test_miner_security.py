"""The miner refuses every unauthenticated or malformed request **before the backend runs**: each test checks
the backend's call counter. Requests go to the ASGI app in process (no sockets needed for these checks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from gridmint.chain.crypto import format_address
from gridmint.client.signing import CALLEE, NONCE, SIGNATURE, sign_request, verify_answer
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from tests.support.chain import key

MINER, VALIDATOR, STRANGER = key("miner-hot"), key("validator-hot"), key("stranger-hot")
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello signed world"}], "max_tokens": 8}


def make_app(**kwargs: Any) -> tuple[MinerApp, EchoBackend]:
    backend = EchoBackend()
    policy = CallerPolicy(validators={format_address(VALIDATOR.address)})
    return MinerApp(MINER, backend, policy, **kwargs), backend


def post(app: MinerApp, body: bytes, headers: dict[str, str], path: str = "/v1/chat/completions") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://miner") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go())


def signed(body: bytes, signer: Any = VALIDATOR, callee: str | None = None, nonce: int | None = None) -> dict[str, str]:
    return sign_request(signer, callee or format_address(MINER.address), body, nonce)


def refused(app: MinerApp, backend: EchoBackend, body: bytes, headers: dict[str, str], status: int,
            code: str) -> None:
    response = post(app, body, headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert backend.calls == 0, "the backend ran for a refused request"


def test_a_signed_request_is_answered_and_the_answer_is_signed() -> None:
    app, backend = make_app()
    body = orjson.dumps(CHAT)
    headers = signed(body)
    response = post(app, body, headers)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "hello signed world"
    assert response.json()["usage"]["total_tokens"] == 6
    verify_answer(dict(response.headers), response.content, format_address(MINER.address), int(headers[NONCE]),
                  format_address(VALIDATOR.address))
    assert backend.calls == 1


def tamper(headers: dict[str, str], name: str, change: Callable[[str], str]) -> dict[str, str]:
    return {**headers, name: change(headers[name])}


BODY = orjson.dumps(CHAT)


def flip_first_hex_digit(text: str) -> str:
    return ("0" if text[0] != "0" else "1") + text[1:]


CASES: dict[str, tuple[Callable[[], tuple[bytes, dict[str, str]]], int, str]] = {
    "forged signature": (lambda: (BODY, tamper(signed(BODY), SIGNATURE, flip_first_hex_digit)), 401,
                         "auth/bad_signature"),
    "missing signature": (lambda: (BODY, {k: v for k, v in signed(BODY).items() if k != SIGNATURE}), 401,
                          "auth/missing_signature"),
    "no headers at all": (lambda: (BODY, {}), 401, "auth/missing_signature"),
    "signature by a hotkey not registered": (lambda: (BODY, signed(BODY, signer=STRANGER)), 403, "auth/not_permitted"),
    "stale nonce": (lambda: (BODY, signed(BODY, nonce=time.time_ns() - 120 * 10**9)), 401, "auth/stale_nonce"),
    "nonce far in the future": (lambda: (BODY, signed(BODY, nonce=time.time_ns() + 3600 * 10**9)), 401,
                                "auth/stale_nonce"),
    "tampered body": (lambda: (BODY.replace(b"hello", b"HELLO"), signed(BODY)), 401, "auth/body_mismatch"),
    "another miner named as callee": (lambda: (BODY, signed(BODY, callee=format_address(key("other").address))),
                                      421, "auth/wrong_callee"),
    "callee header swapped after signing": (
        lambda: (BODY, tamper(signed(BODY), CALLEE, lambda _: format_address(key("other").address))),
        401, "auth/bad_signature"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_the_backend(case: str) -> None:
    app, backend = make_app()
    make, status, code = CASES[case]
    body, headers = make()
    refused(app, backend, body, headers, status, code)


def test_replayed_nonce() -> None:
    app, backend = make_app()
    headers = signed(BODY)
    assert post(app, BODY, headers).status_code == 200
    assert backend.calls == 1
    response = post(app, BODY, headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "auth/replayed_nonce"
    assert backend.calls == 1


def test_oversize_body() -> None:
    app, backend = make_app(max_body_bytes=1024)
    big = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]})
    refused(app, backend, big, signed(big), 413, "oversize")


def test_busy_answer_when_the_concurrency_limit_is_reached() -> None:
    app, backend = make_app(max_concurrency=1)
    release = asyncio.Event()
    original = backend.generate

    async def slow(request: Any) -> Any:
        await release.wait()
        return await original(request)

    backend.generate = slow  # type: ignore[method-assign]

    async def go() -> tuple[int, int, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://miner") as client:
            first = asyncio.create_task(client.post("/v1/chat/completions", content=BODY, headers=signed(BODY)))
            await asyncio.sleep(0.05)
            second = await client.post("/v1/chat/completions", content=BODY, headers=signed(BODY))
            release.set()
            done = await first
            return done.status_code, second.status_code, second.json()["error"]["message"]

    first, second, message = asyncio.run(go())
    assert (first, second) == (200, 503) and "busy" in message


def test_unknown_model_and_bad_json_are_clear_errors() -> None:
    app, backend = make_app()
    body = orjson.dumps({**CHAT, "model": "gpt-9"})
    response = post(app, body, signed(body))
    assert response.status_code == 400 and "not served here" in response.json()["error"]["message"]
    garbage = b"{not json"
    assert post(app, garbage, signed(garbage)).status_code == 400
    assert backend.calls == 0


def test_a_tampered_answer_does_not_verify() -> None:
    app, _ = make_app()
    headers = signed(BODY)
    response = post(app, BODY, headers)
    from gridmint.chain.errors import ChainError

    with pytest.raises(ChainError) as caught:
        verify_answer(dict(response.headers), response.content.replace(b"hello", b"HELLO"),
                      format_address(MINER.address), int(headers[NONCE]), format_address(VALIDATOR.address))
    assert caught.value.kind.name == "bad_answer_signature"
    with pytest.raises(ChainError):  # signed by the miner, but not for this request's nonce
        verify_answer(dict(response.headers), response.content, format_address(MINER.address),
                      int(headers[NONCE]) + 1, format_address(VALIDATOR.address))


def test_streaming_ends_with_usage_a_signature_and_done() -> None:
    app, _ = make_app()
    body = orjson.dumps({**CHAT, "stream": True})
    headers = signed(body)
    response = post(app, body, headers)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    events = [e for e in response.content.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "hello signed world"
    last = chunks[-1]
    assert last["usage"]["completion_tokens"] == 3 and last["choices"][0]["finish_reason"] == "stop"
    before_last = b"".join(e + b"\n\n" for e in events[:-2])
    proof = last["gridmint"]
    proof_headers = {"x-gm-signer": proof["signer"], "x-gm-body": proof["body_sha256"],
                     "x-gm-signature": proof["signature"]}
    verify_answer(proof_headers, before_last, format_address(MINER.address), int(headers[NONCE]),
                  format_address(VALIDATOR.address))


def test_public_endpoints() -> None:
    app, backend = make_app()

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://miner") as client:
            return [await client.get(p) for p in ("/health", "/v1/models", "/metrics", "/nope")]

    health, models, metrics, missing = asyncio.run(go())
    assert health.json()["models"] == ["echo"] and models.json()["data"][0]["id"] == "echo"
    assert b"gridmint_miner_requests" in metrics.content and missing.status_code == 404
    assert backend.calls == 0


def test_embeddings_through_echo() -> None:
    app, _ = make_app()
    body = orjson.dumps({"model": "echo", "input": ["a", "b c"]})
    response = post(app, body, signed(body), path="/v1/embeddings")
    data = response.json()
    assert response.status_code == 200 and len(data["data"]) == 2 and len(data["data"][0]["embedding"]) == 16
    assert data["usage"]["prompt_tokens"] == 3
