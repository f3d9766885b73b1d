"""The gateway app on loopback sockets: against miners that misbehave (a stream broken after its first tokens ends
with an error event and costs the consumer nothing; an unsigned answer is never passed on or paid), against
consumers who push (50 concurrent requests on a line that holds one are served only as far as the line pays; keys
and /v1/auth are rate-limited per account and per client address), and what a consumer can check (the answer's
headers and GET /v1/usage agree with the ledger). The credit line is a stand-in for the chain's answer here;
tests/gateway/test_settlement.py and tests/e2e run the gateway against a real chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.credit import CreditBook
from gridmint.gateway.keys import request_api_key
from gridmint.gateway.ledger import Ledger, charge
from gridmint.gateway.routing import Candidate, Directory
from gridmint.inference.asgi import CoalescingHttpToolsProtocol, read_body
from gridmint.inference.backends.base import TEXT_GENERATION, Generation, GenerationResult, StreamPiece
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from tests.support.chain import key
from tests.support.gateway_app import FEE_BPS, ONE, GatewayBooks, LineStandIn, unsigned_app

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 8}


class BreakingBackend(EchoBackend):
    """Streams two words, then fails as a crashed model server would."""

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        yield StreamPiece("one ")
        yield StreamPiece("two ")
        raise RuntimeError("the GPU fell off the bus")

    async def generate(self, request: Generation) -> GenerationResult:
        return GenerationResult("fine", 3, 1)


@dataclass
class Network:
    url: str
    api_key: str
    ledger: Ledger
    hotkeys: dict[str, str]
    chain: LineStandIn
    app: GatewayApp
    books: GatewayBooks


@pytest.fixture
def network(books: GatewayBooks, serve: Callable[..., str]) -> Network:
    urls = {"breaking": serve(MinerApp(key("breaking"), BreakingBackend(), CallerPolicy(allow="any"))),
            "echo": serve(MinerApp(key("echo"), EchoBackend(), CallerPolicy(allow="any"))),
            "unsigned": serve(unsigned_app)}
    hotkeys = {name: format_address(key(name).address) for name in urls}
    directory = Directory([
        Candidate(1, 0, hotkeys["unsigned"], urls["unsigned"], ("echo",), 1_000, ONE, TEXT_GENERATION),
        Candidate(1, 1, hotkeys["breaking"], urls["breaking"], ("echo",), 1_000, ONE // 2, TEXT_GENERATION),
        Candidate(1, 2, hotkeys["echo"], urls["echo"], ("echo",), 1_000, ONE // 4, TEXT_GENERATION)])
    chain = LineStandIn()
    credit = CreditBook(chain, books.address, books.ledger)  # type: ignore[arg-type]
    allow = [url.removeprefix("http://") for url in urls.values()]
    app = GatewayApp(books.address, MinerClient(key("gateway"), timeout_s=5, allow=allow), directory, books.keys,
                     books.ledger, credit, RateLimiter(1_000, 1_000), timeout_s=5, idle_s=5)
    url = serve(app, http=CoalescingHttpToolsProtocol)  # as serve_gateway runs it
    return Network(url, books.issue_api_key(), books.ledger, hotkeys, chain, app, books)


def test_an_unsigned_answer_is_never_passed_on_and_the_next_miner_serves(network: Network) -> None:
    url, api_key, ledger, hotkeys = network.url, network.api_key, network.ledger, network.hotkeys
    answer = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "provider": {"ignore": [hotkeys["breaking"]]}},
                        headers={"authorization": f"Bearer {api_key}"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["x-gridmint-miner"] == hotkeys["echo"]
    assert "trust me" not in answer.text and "one two three" in answer.text
    rows = ledger.db.execute("SELECT miner, grains FROM metered").fetchall()
    assert [miner for miner, _ in rows] == [hotkeys["echo"]] and rows[0][1] == int(answer.headers["x-gridmint-cost"])


def test_a_stream_broken_mid_way_ends_with_an_error_event_and_costs_nothing(network: Network) -> None:
    url, api_key, ledger, hotkeys = network.url, network.api_key, network.ledger, network.hotkeys
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True},
                      headers={"authorization": f"Bearer {api_key}"}, timeout=10) as answer:
        assert answer.status_code == 200 and answer.headers["x-gridmint-miner"] == hotkeys["breaking"]
        events = [line for line in answer.iter_lines() if line.startswith("data: ")]
    texts = [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[:2]]
    assert texts == ["one ", "two "]
    error = orjson.loads(events[2][6:])["error"]
    assert error["code"] == "miner_failed_mid_stream" and "not charged" in error["message"]
    assert events[3] == "data: [DONE]" and len(events) == 4
    assert ledger.db.execute("SELECT COUNT(*) FROM metered").fetchone()[0] == 0
    assert network.app.credit.reserved(format_address(key("consumer").address)) == 0  # released


def _chat(network: Network, api_key: str | None = None, **extra: Any) -> httpx.Response:
    return httpx.post(f"{network.url}/v1/chat/completions", json={**CHAT, **extra},
                      headers={"authorization": f"Bearer {api_key or network.api_key}"}, timeout=10)


ECHO_ONLY = {"provider": {"only": []}}  # filled with the echo miner's hotkey by the tests


def test_fifty_concurrent_requests_on_a_line_that_holds_one_are_served_only_as_far_as_it_pays(
        network: Network) -> None:
    # The worst case of CHAT: its prompt bound (32 + 8 + 13 bytes) and max_tokens 8, at 1,000 grains per 1k
    # tokens, is 61 grains, and the line's fee on top. The line holds exactly that: one request, never two.
    worst = charge(61, FEE_BPS)
    network.chain.line["balance"] = worst
    only_echo = {"provider": {"only": [network.hotkeys["echo"]]}}

    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=50)) as client:
            return await asyncio.gather(*(client.post(
                f"{network.url}/v1/chat/completions", json={**CHAT, **only_echo},
                headers={"authorization": f"Bearer {network.api_key}"}) for _ in range(50)))

    answers = asyncio.run(flood())
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [402] * 49
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 402} == {"insufficient_credit"}
    served = next(a for a in answers if a.status_code == 200)
    cost = int(served.headers["x-gridmint-cost"])
    consumer = format_address(key("consumer").address)
    assert 0 < cost <= 61 and network.ledger.owed(consumer) == charge(cost, FEE_BPS) <= worst
    assert network.app.credit.reserved(consumer) == 0  # every reservation released, the served one replaced
    assert _chat(network, **only_echo).status_code == 402  # what is left cannot pay another worst case


def test_only_miners_at_or_below_the_lines_max_price_are_routed(network: Network) -> None:
    network.chain.line["max_price_per_1k"] = 999  # every miner here asks 1,000
    answer = _chat(network)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "no_matching_miner"
    assert "maximum price (999 grains" in answer.json()["error"]["message"]
    assert network.ledger.unbatched() == []


def test_answers_name_their_request_cost_and_tokens_and_usage_lists_them(network: Network) -> None:
    answers = [_chat(network, provider={"only": [network.hotkeys["echo"]]}) for _ in range(2)]
    usage = httpx.get(f"{network.url}/v1/usage", headers={"authorization": f"Bearer {network.api_key}"}).json()
    assert usage["consumer"] == format_address(key("consumer").address) and usage["receipts"] == []
    assert [(u["request"], u["tokens"], u["grains"], u["miner"], u["line"], u["state"]) for u in usage["usage"]] == [
        (a.headers["x-gridmint-request"], int(a.headers["x-gridmint-tokens"]), int(a.headers["x-gridmint-cost"]),
         network.hotkeys["echo"], 3, "unsettled") for a in answers]
    assert answers[0].headers["x-gridmint-request"] != answers[1].headers["x-gridmint-request"]
    assert httpx.get(f"{network.url}/v1/usage").status_code == 401


def test_the_rate_limit_is_per_account_however_many_keys_it_holds(network: Network) -> None:
    network.app.limiter = RateLimiter(0.001, 2)
    second_key = network.books.issue_api_key()
    only_echo = {"provider": {"only": [network.hotkeys["echo"]]}}
    assert _chat(network, **only_echo).status_code == 200
    assert _chat(network, second_key, **only_echo).status_code == 200
    limited = _chat(network, second_key, **only_echo)
    assert limited.status_code == 429 and "per account" in limited.json()["error"]["message"]


def test_auth_is_rate_limited_per_client_address_and_per_account(network: Network) -> None:
    network.app.auth_limiter = RateLimiter(0.001, 3)
    alice, bob = (format_address(key(name).address) for name in ("alice", "bob"))

    def challenge(address: str, source: str) -> int:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=10) as client:
            return client.post(f"{network.url}/v1/auth/challenge", json={"address": address}).status_code

    # Per account: alice's challenges from three client addresses, then a fourth address is refused for alice.
    assert [challenge(alice, f"127.0.0.{n}") for n in (2, 3, 4, 5)] == [200, 200, 200, 429]
    assert challenge(bob, "127.0.0.5") == 200  # the same client for another account
    # Per client address: 127.0.0.6 asking for ever new accounts.
    others = [format_address(key(f"x{n}").address) for n in range(4)]
    assert [challenge(address, "127.0.0.6") for address in others] == [200, 200, 200, 429]


class RelayingGateway:
    """A malicious gateway B that passes /v1/auth/* through to gateway A, to get a key at A for the victim's
    account; with ``rewrite`` it also names itself in A's challenge."""

    def __init__(self, target: str, rewrite: str | None) -> None:
        self.target, self.rewrite = target, rewrite
        self.key_requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(scope, receive, 1 << 20) or b""
        self.key_requests += scope["path"] == "/v1/auth/key"
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(self.target + scope["path"], content=body,
                                       headers={"content-type": "application/json"})
        content = answer.content
        if self.rewrite and scope["path"] == "/v1/auth/challenge":
            content = orjson.dumps({**answer.json(), "gateway": self.rewrite})
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": content})


@pytest.mark.parametrize("rewrite", [False, True])
def test_a_gateway_relaying_anothers_challenge_gets_no_key_for_the_consumer(network: Network, rewrite: bool,
                                                                           serve: Callable[..., str]) -> None:
    victim = key("alice")
    address = format_address(victim.address)
    relay_address = format_address(key("gateway-b").address)  # what the chain lists at B's URL
    relay = RelayingGateway(network.url, relay_address if rewrite else None)
    with pytest.raises(ChainError) as caught:
        request_api_key(serve(relay), victim, relay_address)
    if rewrite:  # B names itself: the consumer signs for B, which A (checking its own name) refuses
        assert caught.value.kind.name == "bad_proof" and relay.key_requests == 1
    else:  # A's challenge names A, not the gateway the consumer meant: refused before anything is signed
        assert caught.value.kind.name == "gateway_mismatch" and relay.key_requests == 0
    assert network.books.keys.count(address) == 0
    assert request_api_key(network.url, victim, network.app.address).startswith("gmk_")  # A itself, directly
    assert network.books.keys.count(address) == 1


@pytest.mark.parametrize("query", ["after=9223372036854775808", "line=18446744073709551616", "after=-1"])
def test_usage_refuses_numbers_sqlite_cannot_hold_instead_of_failing(network: Network, query: str) -> None:
    answer = httpx.get(f"{network.url}/v1/usage?{query}", headers={"authorization": f"Bearer {network.api_key}"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"
