"""Probes through a gateway (validator/probes.py), against a small gateway written here that forwards a miner's
signed answer as the real one does: an answer counts as signed only when the named miner signed that body for the
gateway's request; the gateway refusing the validator itself measures nothing, anything else it answers scores 0.
The real gateway's forwarding is tested end to end in tests/e2e/test_two_faced_miner.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gridmint.chain.crypto import format_address
from gridmint.client.signing import NONCE, sign_answer
from gridmint.inference.asgi import read_body, send_raw
from gridmint.inference.client import Answer
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.probes import GatewayProbes, GatewayRefusedError, ProbeGateway
from tests.inference.test_validator import ConstantScorer
from tests.support.asgi import serve_asgi
from tests.support.chain import key

MINER, OTHER, GATEWAY = key("probed miner"), key("another miner"), key("probe gateway")
MINER_ADDRESS = format_address(MINER.address)
BODY = b'{"model": "m", "choices": [{"message": {"content": "hello"}}]}'


class FakeGateway:
    """Answers as ``mode`` says; records what it was sent."""

    def __init__(self) -> None:
        self.mode = "honest"
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(scope, receive, 1 << 20)
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        self.received.append((headers, orjson.loads(body or b"{}")))
        if self.mode in ("402", "429", "401", "503", "404"):
            await send_raw(send, int(self.mode), b'{"error": {}}', b"application/json")
            return
        nonce = 1_700_000_000_000_000_000
        signer, caller, answer = MINER, format_address(GATEWAY.address), BODY
        if self.mode == "other_signer":
            signer = OTHER
        elif self.mode == "other_caller":
            caller = format_address(OTHER.address)
        proof = sign_answer(signer, nonce, caller, answer)
        if self.mode == "altered":
            answer = BODY.replace(b"hello", b"hullo")
        served_by = MINER_ADDRESS if self.mode != "other_miner_header" else format_address(OTHER.address)
        extra = [(b"x-gridmint-miner", served_by.encode()), (NONCE.encode(), b"%d" % nonce)]
        if self.mode != "no_proof":
            extra += [(name.encode(), value.encode()) for name, value in proof.items()]
        await send_raw(send, 200, answer, b"application/json", extra)


@pytest.fixture
def gateway() -> Iterator[tuple[FakeGateway, ProbeGateway]]:
    fake = FakeGateway()
    url, server, thread = serve_asgi(fake)
    yield fake, ProbeGateway(url, "sk-validator", format_address(GATEWAY.address))
    server.should_exit = True
    thread.join(10)


def _probe(target: ProbeGateway) -> Answer:
    async def go() -> Answer:
        async with GatewayProbes(target) as probes:
            return await probes.call("/v1/chat/completions", MINER_ADDRESS, {"model": "m", "messages": []}, 5)
    return asyncio.run(go())


def test_a_probe_is_a_consumers_request_for_that_miner_only_and_its_answer_is_the_miners(
        gateway: tuple[FakeGateway, ProbeGateway]) -> None:
    fake, target = gateway
    answer = _probe(target)
    assert answer.status == 200 and answer.signed and answer.body == BODY
    headers, sent = fake.received[-1]
    assert headers["authorization"] == "Bearer sk-validator"
    assert sent == {"model": "m", "messages": [], "provider": {"only": [MINER_ADDRESS]}}
    assert not any(name.startswith("x-gm-") for name in headers)  # nothing of the validator's hotkey goes out


@pytest.mark.parametrize("mode", ["other_signer", "other_caller", "altered", "no_proof", "other_miner_header"])
def test_an_answer_the_named_miner_did_not_sign_for_the_gateway_is_unsigned(
        gateway: tuple[FakeGateway, ProbeGateway], mode: str) -> None:
    fake, target = gateway
    fake.mode = mode
    answer = _probe(target)
    assert answer.status == 200 and not answer.signed


@pytest.mark.parametrize("status", ["401", "402", "429"])
def test_the_gateway_refusing_the_validator_is_not_the_miners_fault(
        gateway: tuple[FakeGateway, ProbeGateway], status: str) -> None:
    fake, target = gateway
    fake.mode = status
    with pytest.raises(GatewayRefusedError, match=f"HTTP {status}"):
        _probe(target)


def test_in_a_round_a_refused_probe_leaves_the_average_and_a_failed_miner_scores_zero(
        gateway: tuple[FakeGateway, ProbeGateway]) -> None:
    fake, target = gateway
    validator = Validator(key("validator"), 1, "http://127.0.0.1:9", ConstantScorer(), timeout_s=5, seed=0)
    challenge = ConstantScorer().draw(validator.rng)

    def ask() -> tuple[float | None, str]:
        async def go() -> tuple[float | None, str]:
            async with GatewayProbes(target) as probes:
                return await validator._ask(None, probes, "http://unused", MINER_ADDRESS,  # type: ignore[arg-type]
                                            challenge)
        return asyncio.run(go())

    assert (ask()[0] or 0) > 0.99  # the quality, times the latency factor
    fake.mode = "402"
    score, note = ask()
    assert score is None and "HTTP 402" in note
    for failed in ("503", "404", "other_signer"):
        fake.mode = failed
        assert ask()[0] == 0.0, failed
    validator.close()
