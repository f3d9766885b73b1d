"""The gateway app against miners that misbehave, on loopback sockets: a stream broken after its first tokens ends
with an error event and costs the consumer nothing; an unsigned answer is never passed on or paid. (The credit
line is a fixed stand-in here; tests/e2e run the gateway against the chain.)"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from gridmint.chain.crypto import format_address
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.keys import ApiKeys, key_message
from gridmint.gateway.ledger import Ledger, open_db
from gridmint.gateway.routing import Candidate, Directory
from gridmint.inference.asgi import CoalescingHttpToolsProtocol
from gridmint.inference.backends.base import TEXT_GENERATION, Generation, GenerationResult, StreamPiece
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from tests.helpers import free_port, key

ONE = 1 << 30
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 8}


class BreakingBackend(EchoBackend):
    """Streams two words, then fails as a crashed model server would."""

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        yield StreamPiece("one ")
        yield StreamPiece("two ")
        raise RuntimeError("the GPU fell off the bus")

    async def generate(self, request: Generation) -> GenerationResult:
        return GenerationResult("fine", 3, 1)


async def unsigned_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 with a plausible body and no signature."""
    if scope["type"] != "http":
        return
    body = orjson.dumps({"choices": [{"message": {"content": "trust me"}}], "usage": {"completion_tokens": 999}})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class FixedCredit:
    def __init__(self, grains: int) -> None:
        self.grains = grains

    async def available(self, consumer: str) -> int:
        return self.grains

    def settled(self, consumer: str, charged: int) -> None:
        pass



def _serve(app: Any, **options: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off",
                                           **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[str, str, Ledger, dict[str, str]]]:
    miners = {"breaking": MinerApp(key("breaking"), BreakingBackend(), CallerPolicy(allow="any")),
              "echo": MinerApp(key("echo"), EchoBackend(), CallerPolicy(allow="any"))}
    served = {name: _serve(app) for name, app in miners.items()}
    unsigned_url, unsigned_server, unsigned_thread = _serve(unsigned_app)
    hotkeys = {name: format_address(key(name).address) for name in ("breaking", "echo", "unsigned")}
    directory = Directory([
        Candidate(1, 0, hotkeys["unsigned"], unsigned_url, ("echo",), 1_000, ONE, TEXT_GENERATION),
        Candidate(1, 1, hotkeys["breaking"], served["breaking"][0], ("echo",), 1_000, ONE // 2, TEXT_GENERATION),
        Candidate(1, 2, hotkeys["echo"], served["echo"][0], ("echo",), 1_000, ONE // 4, TEXT_GENERATION)])
    db = open_db(str(tmp_path / "gateway.db"))
    gateway_address = format_address(key("gateway").address)
    keys = ApiKeys(db, gateway_address)
    consumer = key("consumer")
    address = format_address(consumer.address)
    api_key = keys.issue(address, consumer.public_key.hex(),
                         consumer.sign(key_message(gateway_address, address, keys.challenge(address))).hex())
    ledger = Ledger(db, 100)
    app = GatewayApp(gateway_address, MinerClient(key("gateway"), timeout_s=5), directory, keys, ledger,
                     FixedCredit(10**9), RateLimiter(1_000, 1_000), timeout_s=5, idle_s=5)  # type: ignore[arg-type]
    url, server, thread = _serve(app, http=CoalescingHttpToolsProtocol)  # as serve_gateway runs it
    try:
        yield url, api_key, ledger, hotkeys
    finally:
        for running in (server, unsigned_server, *(s for _, s, _ in served.values())):
            running.should_exit = True
        for waiting in (thread, unsigned_thread, *(t for _, _, t in served.values())):
            waiting.join(timeout=10)


def test_an_unsigned_answer_is_never_passed_on_and_the_next_miner_serves(network: Any) -> None:
    url, api_key, ledger, hotkeys = network
    answer = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "provider": {"ignore": [hotkeys["breaking"]]}},
                        headers={"authorization": f"Bearer {api_key}"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["x-gridmint-miner"] == hotkeys["echo"]
    assert "trust me" not in answer.text and "one two three" in answer.text
    rows = ledger.db.execute("SELECT miner, grains FROM usage").fetchall()
    assert [miner for miner, _ in rows] == [hotkeys["echo"]] and rows[0][1] == int(answer.headers["x-gridmint-cost"])


def test_a_stream_broken_mid_way_ends_with_an_error_event_and_costs_nothing(network: Any) -> None:
    url, api_key, ledger, hotkeys = network
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True},
                      headers={"authorization": f"Bearer {api_key}"}, timeout=10) as answer:
        assert answer.status_code == 200 and answer.headers["x-gridmint-miner"] == hotkeys["breaking"]
        events = [line for line in answer.iter_lines() if line.startswith("data: ")]
    texts = [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[:2]]
    assert texts == ["one ", "two "]
    error = orjson.loads(events[2][6:])["error"]
    assert error["code"] == "miner_failed_mid_stream" and "not charged" in error["message"]
    assert events[3] == "data: [DONE]" and len(events) == 4
    assert ledger.db.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 0
