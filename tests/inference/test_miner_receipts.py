"""``POST /v1/receipts`` and the gateway's exposure, through the miner's ASGI app in process: a gateway is
counted what it is served, gets receipts signed within that, and is refused (402) once its unreceipted debt
reaches its bond. Every refusal is checked to store nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.receipts import Receipt, acknowledge_receipt, miner_signed
from gridmint.client.signing import NONCE, sign_request, verify_answer
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.miner.app import MAX_RECEIPTS, MinerApp
from gridmint.inference.miner.book import Served, cost
from gridmint.inference.protocol import CallerPolicy
from tests.support.chain import CHAIN_ID, key

MINER, GATEWAY, VALIDATOR, ALICE = key("miner-hot"), key("gateway"), key("validator-hot"), key("alice")
GW, VAL = format_address(GATEWAY.address), format_address(VALIDATOR.address)
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello signed world"}], "max_tokens": 8}
TOKENS = 6  # the echo backend's prompt + completion tokens for CHAT
PRICE = 1_000_000  # grains per 1k tokens: 6 tokens cost 6,000 grains
BOND = 10**9


def make_app(bond: int = BOND, listed: bool = False) -> tuple[MinerApp, EchoBackend]:
    backend = EchoBackend()
    policy = CallerPolicy(validators={VAL}, chain_bonds={GW: bond}, gateways={GW} if listed else set())
    return MinerApp(MINER, backend, policy, chain_id=CHAIN_ID, price_per_1k=PRICE), backend


def post(app: MinerApp, path: str, payload: Any, signer: PrivateKey = GATEWAY) -> tuple[httpx.Response, int]:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = sign_request(signer, format_address(MINER.address), body)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://miner") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go()), int(headers[NONCE])


def serve(app: MinerApp, times: int, signer: PrivateKey = GATEWAY, stream: bool = False) -> None:
    for _ in range(times):
        response, _ = post(app, "/v1/chat/completions", {**CHAT, "stream": stream}, signer)
        assert response.status_code == 200, response.text


def receipt(line: int, tokens: int, requests: int, chain_id: str = CHAIN_ID) -> Receipt:
    return Receipt(chain_id, line, GATEWAY.address, ALICE.address, MINER.address, tokens, cost(tokens, PRICE),
                   requests)


def wire(r: Receipt, ack: bytes | None = None) -> dict[str, Any]:
    return {"line": r.line, "consumer": format_address(r.consumer), "tokens": r.tokens, "grains": r.grains,
            "requests": r.requests, "ack": (ack if ack is not None else acknowledge_receipt(GATEWAY, r)).hex()}


def ask(app: MinerApp, *receipts: Receipt, chain_id: str = CHAIN_ID, signer: PrivateKey = GATEWAY,
        acks: list[bytes] | None = None) -> httpx.Response:
    items = [wire(r, acks[i] if acks else None) for i, r in enumerate(receipts)]
    return post(app, "/v1/receipts", {"chain_id": chain_id, "receipts": items}, signer)[0]


def results(response: httpx.Response) -> list[tuple[str | None, str | None]]:
    assert response.status_code == 200, response.text
    return [(item["signature"], item["error"]) for item in response.json()["receipts"]]


def test_a_gateway_gets_a_good_batch_signed_in_a_signed_answer() -> None:
    app, _ = make_app()
    serve(app, 3)
    serve(app, 1, stream=True)  # a stream is counted when its last chunk is produced
    assert app.book.served(GW) == Served(tokens=4 * TOKENS, requests=4, grains=4 * cost(TOKENS, PRICE))
    first, second = receipt(1, 2 * TOKENS, 2), receipt(2, 2 * TOKENS, 2)
    body = orjson.dumps({"chain_id": CHAIN_ID, "receipts": [wire(first), wire(second)]})
    response, nonce = post(app, "/v1/receipts", orjson.loads(body))
    verify_answer(dict(response.headers), response.content, format_address(MINER.address), nonce, GW)
    signatures = [bytes.fromhex(s) for s, error in results(response) if error is None and s]
    assert len(signatures) == 2
    assert miner_signed(first, MINER.public_key, signatures[0]) and miner_signed(second, MINER.public_key,
                                                                                  signatures[1])
    assert [s.receipt for s in app.book.stored()] == [first, second] and app.book.exposure(GW) == 0


def test_validators_are_answered_and_not_counted() -> None:
    app, backend = make_app()
    serve(app, 2, signer=VALIDATOR)
    assert backend.calls == 2 and app.book.served(VAL) == Served() and app.book.served(GW) == Served()


def no_change(app: MinerApp) -> tuple[Any, ...]:
    return tuple(app.book.stored()), app.book.served(GW)


@pytest.mark.parametrize("case", ["forged ack", "above what was served", "lower than the last"])
def test_a_receipt_the_rules_refuse_is_not_signed_and_nothing_is_stored(case: str) -> None:
    app, _ = make_app()
    serve(app, 2)
    assert results(ask(app, receipt(1, TOKENS, 1)))[0][1] is None
    before = no_change(app)
    if case == "forged ack":
        forged = receipt(1, 2 * TOKENS, 2)
        answer = ask(app, forged, acks=[acknowledge_receipt(key("not-the-gateway"), forged)])
        expected = "bad_ack"
    elif case == "above what was served":
        answer, expected = ask(app, receipt(1, 3 * TOKENS, 2)), "beyond_served"
    else:
        answer, expected = ask(app, receipt(1, TOKENS - 1, 1)), "below_last"
    assert results(answer) == [(None, expected)]
    assert no_change(app) == before


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_call_that_is_not_a_gateways_or_not_for_this_chain_or_too_long_is_refused_whole() -> None:
    app, _ = make_app()
    serve(app, 2)
    before = no_change(app)
    refused(ask(app, receipt(1, TOKENS, 1), signer=VALIDATOR), 403, "auth/not_permitted")
    refused(ask(app, receipt(1, TOKENS, 1, chain_id="other-chain"), chain_id="other-chain"), 400, "wrong_chain")
    refused(ask(app, *[receipt(i + 1, 0, 0) for i in range(MAX_RECEIPTS + 1)]), 400, "too_many_receipts")
    too_big = orjson.dumps({"chain_id": CHAIN_ID, "receipts": [wire(receipt(1, 6, 1))]}).replace(
        b'"tokens":6', b'"tokens":18446744073709551616')  # 2^64, which JSON parsers read as a float
    refused(post(app, "/v1/receipts", too_big)[0], 400, "inference/bad_request")
    response, _ = post(app, "/v1/receipts", {"chain_id": CHAIN_ID, "receipts": [{**wire(receipt(1, 6, 1)),
                                                                                "ack": "00"}]})
    refused(response, 400, "inference/bad_request")
    assert no_change(app) == before
    assert len(results(ask(app, *[receipt(i + 1, 0, 0) for i in range(MAX_RECEIPTS)]))) == MAX_RECEIPTS


def test_a_miner_that_does_not_know_its_chain_signs_nothing() -> None:
    app = MinerApp(MINER, EchoBackend(), CallerPolicy(chain_bonds={GW: BOND}))
    serve(app, 1)
    refused(ask(app, receipt(1, TOKENS, 1)), 400, "wrong_chain")
    assert app.book.stored() == []


def test_a_gateway_owing_its_bond_is_refused_until_it_asks_for_receipts() -> None:
    app, backend = make_app(bond=2 * cost(TOKENS, PRICE))
    serve(app, 2)  # the debt now equals the bond
    response, _ = post(app, "/v1/chat/completions", CHAT)
    refused(response, 402, "gateway_exposure")
    assert backend.calls == 2 and app.book.served(GW).requests == 2
    assert results(ask(app, receipt(1, TOKENS, 1)))[0][1] is None  # asking is never refused for exposure
    serve(app, 1)  # one answer's debt is covered again
    refused(post(app, "/v1/embeddings", {"model": "echo", "input": ["x"]})[0], 402, "gateway_exposure")
    serve(app, 1, signer=VALIDATOR)  # others are not held back by a gateway's debt
    assert backend.calls == 4


def test_a_listed_gateway_is_served_whatever_it_owes() -> None:
    app, _ = make_app(bond=1, listed=True)
    serve(app, 3)
    assert app.book.exposure(GW) == 3 * cost(TOKENS, PRICE)


def test_a_receipt_inflating_its_grains_does_not_buy_a_gateway_unreceipted_service() -> None:
    """Exposure counts grains served and not covered by a signed receipt; a receipt's grains are the gateway's
    word. One receipt for a token with 2^64 - 1 grains (far above any line's price: the chain would never pay it)
    must not cover what the miner serves afterwards, nor more than the share of the unsigned usage it signs."""
    app, backend = make_app(bond=2 * cost(TOKENS, PRICE))
    serve(app, 1)
    inflated = Receipt(CHAIN_ID, 1, GATEWAY.address, ALICE.address, MINER.address, 1, 2**64 - 1, 1)
    assert results(ask(app, inflated))[0][1] is None  # within what was served: the miner signs it
    for _ in range(5):
        post(app, "/v1/chat/completions", CHAT)
    assert backend.calls <= 3  # served again only up to its bond, not without end
    assert app.book.exposure(GW) >= 2 * cost(TOKENS, PRICE) - cost(1, PRICE)


def test_empty_receipts_for_ever_new_lines_do_not_grow_the_miners_book() -> None:
    """A receipt of no request adds nothing and can never be paid (the chain refuses ``empty_entry``); signed, each
    one for a new line id would be a new row in the miner's book, 256 per call, for any gateway with a bond."""
    app, _ = make_app()
    for call in range(3):
        empties = [Receipt(CHAIN_ID, 1 + call * MAX_RECEIPTS + i, GATEWAY.address, ALICE.address, MINER.address, 0, 0,
                           0) for i in range(MAX_RECEIPTS)]
        assert {error for _, error in results(ask(app, *empties))} == {"empty"}
    assert app.book.stored() == []
