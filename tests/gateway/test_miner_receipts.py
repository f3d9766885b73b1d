"""The gateway's client for miners' POST /v1/receipts: a real miner signs what it served; an answer the miner did
not sign, a receipt signature that does not verify (for these fields, by this miner) or a miner that is down
yields no signature, and each says why."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from gridmint.chain.crypto import address_of, format_address
from gridmint.chain.receipts import Receipt, miner_signed, sign_receipt
from gridmint.client.signing import CALLER, NONCE, sign_answer
from gridmint.gateway import miner_receipts
from gridmint.inference.asgi import read_body
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.http import HttpPool
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.ports import free_port
from tests.support.asgi import serve_asgi
from tests.support.chain import CHAIN_ID, key

GATEWAY, MINER, CONSUMER = key("gateway"), key("m1"), key("alice")
HOTKEY = format_address(MINER.address)


def receipt(tokens: int, grains: int, requests: int, line: int = 7) -> Receipt:
    return Receipt(CHAIN_ID, line, GATEWAY.address, CONSUMER.address, MINER.address, tokens, grains, requests)


def _serve(app: Any) -> tuple[str, Callable[[], None]]:
    url, server, thread = serve_asgi(app)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return url, stop


def ask(url: str, receipts: list[Receipt]) -> list[miner_receipts.Outcome]:
    async def run() -> list[miner_receipts.Outcome]:
        pool = HttpPool()
        try:
            return await miner_receipts.ask(pool, GATEWAY, url, HOTKEY, CHAIN_ID, receipts, timeout_s=5)
        finally:
            pool.close()

    return asyncio.run(run())


def test_a_real_miner_signs_what_it_served_and_refuses_more() -> None:
    miner = MinerApp(MINER, EchoBackend(), CallerPolicy(gateways={format_address(GATEWAY.address)}),
                     chain_id=CHAIN_ID, price_per_1k=1_000)
    miner.book.count(format_address(GATEWAY.address), 40, 1_000)  # what it served this gateway: 2 answers
    miner.book.count(format_address(GATEWAY.address), 60, 1_000)
    url, stop = _serve(miner)
    try:
        outcomes = ask(url, [receipt(70, 70, 1), receipt(30, 30, 1, line=8), receipt(1, 1, 1, line=9)])
    finally:
        stop()
    first, second, third = outcomes
    assert first.signed is not None and miner_signed(receipt(70, 70, 1), first.signed.miner_key, first.signed.signature)
    assert address_of(first.signed.miner_key) == MINER.address
    assert second.signed is not None and second.error is None
    assert third.signed is None and third.error == "beyond_served"  # 101 tokens over 3 requests: more than served


def forging_miner(tamper: str) -> Any:
    """Answers /v1/receipts, signed as the miner, with receipt signatures over other fields ("receipt"), or an
    answer signature over another body ("answer")."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(scope, receive, 1 << 20) or b""
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        asked = orjson.loads(body)["receipts"]
        signatures = [sign_receipt(MINER, receipt(item["tokens"], item["grains"] + (tamper == "receipt"),
                                                  item["requests"], item["line"])).hex() for item in asked]
        answer = orjson.dumps({"receipts": [{"signature": s, "error": None} for s in signatures]})
        caller = format_address(address_of(bytes.fromhex(headers[CALLER])))
        signed = sign_answer(MINER, int(headers[NONCE]), caller, answer + (b" " if tamper == "answer" else b""))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                *((k.encode(), v.encode()) for k, v in signed.items())]})
        await send({"type": "http.response.body", "body": answer})

    return app


def test_forged_answers_and_signatures_and_a_miner_down_yield_no_signature() -> None:
    for tamper, why in (("receipt", "bad_signature"), ("answer", "does not verify")):
        url, stop = _serve(forging_miner(tamper))
        try:
            outcomes = ask(url, [receipt(10, 10, 1)])
        finally:
            stop()
        assert outcomes[0].signed is None and why in str(outcomes[0].error)
    [down] = ask(f"http://127.0.0.1:{free_port()}", [receipt(10, 10, 1)])
    assert down.signed is None and "unreachable" in str(down.error)
