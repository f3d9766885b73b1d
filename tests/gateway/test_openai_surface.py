"""The gateway's side of OpenAI's surface, on loopback sockets against echo miners: capabilities read from the
miners and honoured (``require_parameters``, ``quantizations``, ``sort: throughput``), a fallback list of models
billed at the model used, the cost in every answer's usage (the miner's proof still checks), structured answers
checked before they are paid, tool calls streamed, n choices, and unknown fields refused before any miner works."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from gridmint.chain.credit import compute_fee
from gridmint.chain.crypto import format_address
from gridmint.client.signing import BODY, NONCE, SIGNATURE, SIGNER, verify_answer
from gridmint.gateway.app import GatewayApp, RateLimiter
from gridmint.gateway.credit import CreditBook
from gridmint.gateway.ledger import Ledger
from gridmint.gateway.routing import Candidate, Directory, Preferences
from gridmint.gateway.server import UNANSWERED_RETRY_S, refresh_capabilities
from gridmint.inference import wire
from gridmint.inference.asgi import CoalescingHttpToolsProtocol
from gridmint.inference.backends.base import TEXT_GENERATION
from gridmint.inference.backends.echo import ECHO_CAPABILITIES, EchoBackend
from gridmint.inference.client import MinerClient
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.ports import free_port
from tests.support.chain import key
from tests.support.gateway_app import FEE_BPS, ONE, GatewayBooks, LineStandIn
from tests.support.waiting import wait_for

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CITY = {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}}
PRICES = {"plain": 500, "q8": 1_000, "beta": 3_000}


@dataclass
class Surface:
    url: str
    headers: dict[str, str]
    hotkeys: dict[str, str]
    backends: dict[str, EchoBackend]
    ledger: Ledger
    directory: Directory

    def post(self, body: dict[str, Any], path: str = "/v1/chat/completions") -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=10)

    def metered(self, rows: int | None = None) -> list[tuple[str, int]]:
        """The ledger's rows, once it holds ``rows`` of them (the gateway writes at the end of its loop's turn,
        which may come just after the answer's last byte)."""
        def found() -> list[tuple[str, int]]:
            return [(m, int(g)) for m, g in self.ledger.db.execute("SELECT miner, grains FROM metered ORDER BY rowid")]

        if rows is not None:
            wait_for(lambda: len(found()) >= rows, f"{rows} metered rows", timeout_s=5, interval_s=0.01,
                     detail=lambda: str(found()))
        return found()


@pytest.fixture
def surface(books: GatewayBooks, serve: Callable[..., str]) -> Surface:
    backends = {"plain": EchoBackend("alpha", capabilities={}),
                "q8": EchoBackend("alpha", capabilities={**ECHO_CAPABILITIES, "quantization": "q8_0"}),
                "beta": EchoBackend("beta")}
    urls = {name: serve(MinerApp(key(name), backend, CallerPolicy(allow="any"))) for name, backend in backends.items()}
    urls["gone"] = f"http://127.0.0.1:{free_port()}"  # nothing listens: the one miner of "gamma" has no healthy server
    hotkeys = {name: format_address(key(name).address) for name in urls}
    directory = Directory([
        Candidate(1, 0, hotkeys["plain"], urls["plain"], ("alpha",), PRICES["plain"], ONE, TEXT_GENERATION),
        Candidate(1, 1, hotkeys["q8"], urls["q8"], ("alpha",), PRICES["q8"], ONE // 2, TEXT_GENERATION),
        Candidate(2, 0, hotkeys["beta"], urls["beta"], ("beta",), PRICES["beta"], ONE, TEXT_GENERATION),
        Candidate(3, 0, hotkeys["gone"], urls["gone"], ("gamma",), 100, ONE, TEXT_GENERATION)])
    allow = [url.removeprefix("http://") for url in urls.values()]
    miners = MinerClient(key("gateway"), timeout_s=5, allow=allow)
    asyncio.run(refresh_capabilities(directory, MinerClient(key("gateway"), timeout_s=5, allow=allow), {}))
    app = GatewayApp(books.address, miners, directory, books.keys, books.ledger,
                     CreditBook(LineStandIn(), books.address, books.ledger),  # type: ignore[arg-type]
                     RateLimiter(1_000, 1_000), timeout_s=5, idle_s=5)
    headers = {"authorization": f"Bearer {books.issue_api_key()}"}
    # as serve_gateway runs it: the ledger's rows are committed before the answer leaves, which the tests read
    return Surface(serve(app, http=CoalescingHttpToolsProtocol), headers, hotkeys, backends, books.ledger, directory)


def chat(content: str = "one two three", **fields: Any) -> dict[str, Any]:
    return {"model": "alpha", "messages": [{"role": "user", "content": content}], "max_tokens": 16, **fields}


def test_capabilities_are_read_from_the_miners_and_listed_with_the_models(surface: Surface) -> None:
    assert surface.directory.capabilities[surface.hotkeys["plain"]] == {}
    assert surface.directory.capabilities[surface.hotkeys["q8"]]["quantization"] == "q8_0"
    assert surface.directory.capabilities[surface.hotkeys["gone"]] == {}  # no answer: announces nothing
    listed = {m["id"]: m for m in httpx.get(f"{surface.url}/v1/models", timeout=5).json()["data"]}
    assert listed["alpha"]["capabilities"]["tools"] is True and "capabilities" not in listed["gamma"]


def test_a_request_goes_to_miners_that_serve_its_parameters(surface: Surface) -> None:
    plain, q8 = surface.hotkeys["plain"], surface.hotkeys["q8"]
    assert surface.post(chat()).headers["x-gridmint-miner"] == plain  # ranked first, and plain text is all it needs
    tools = chat(tools=[WEATHER], tool_choice="required")
    assert surface.post(tools).headers["x-gridmint-miner"] == q8  # announces tools: first for a tool call
    refused = surface.post({**tools, "provider": {"only": [plain], "require_parameters": True}})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "no_matching_miner"
    assert surface.post({**tools, "provider": {"only": [plain]}}).headers["x-gridmint-miner"] == plain
    assert surface.post(chat(provider={"quantizations": ["q8_0"]})).headers["x-gridmint-miner"] == q8
    assert surface.post(chat(provider={"quantizations": ["f16"]})).status_code == 404
    assert surface.post(chat(provider={"require_parameters": "yes"})).status_code == 400


def test_sort_by_throughput_puts_the_fastest_measured_miner_first(surface: Surface) -> None:
    plain, q8 = surface.hotkeys["plain"], surface.hotkeys["q8"]
    surface.directory.health_of(plain).measured_throughput(10, 1.0)
    surface.directory.health_of(q8).measured_throughput(90, 1.0)
    serving = surface.directory.serving("alpha")
    assert [c.hotkey for c in surface.directory.order(serving, Preferences(sort="throughput"))] == [q8, plain]
    assert surface.post(chat(provider={"sort": "throughput"})).headers["x-gridmint-miner"] == q8


def test_a_fallback_list_is_served_by_the_next_model_and_billed_at_its_price(surface: Surface) -> None:
    answer = surface.post(chat(model="gamma", models=["beta"]))
    assert answer.status_code == 200 and answer.json()["model"] == "beta"
    assert answer.headers["x-gridmint-miner"] == surface.hotkeys["beta"]
    usage = answer.json()["usage"]
    assert surface.metered(1) == [(surface.hotkeys["beta"], (usage["total_tokens"] * PRICES["beta"] + 999) // 1000)]
    assert surface.post(chat(model=None, models=["gamma", "beta"])).json()["model"] == "beta"  # no model: the first
    nowhere = surface.post(chat(model="gamma", models=["delta"]))
    assert nowhere.status_code == 503  # gamma's one miner is down and no miner serves delta
    assert surface.post(chat(models="beta")).status_code == 400


def test_the_cost_is_in_the_usage_and_the_miners_proof_still_checks(surface: Surface) -> None:
    answer = surface.post(chat())
    usage = answer.json()["usage"]
    grains = int(answer.headers["x-gridmint-cost"])
    fee = compute_fee(grains, FEE_BPS)
    assert usage["cost_grains"] == grains + fee and usage["cost"] == wire.mint_text(grains + fee)
    assert usage["cost_details"] == {"miner_grains": grains, "fee_grains": fee} and surface.metered(1)[-1][1] == grains
    verify_answer({name: answer.headers[name] for name in (SIGNER, BODY, SIGNATURE)},
                  wire.without_cost(answer.content), surface.hotkeys["plain"], int(answer.headers[NONCE]),
                  format_address(key("gateway").address))


def stream_events(surface: Surface, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{surface.url}/v1/chat/completions", json={**body, "stream": True},
                      headers=surface.headers, timeout=10) as answer:
        assert answer.status_code == 200, answer.read()
        lines = [line[6:] for line in answer.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [orjson.loads(line) for line in lines[:-1]]


def test_a_stream_ends_with_the_usage_and_cost_when_asked(surface: Surface) -> None:
    events = stream_events(surface, chat(stream_options={"include_usage": True}))
    last = events[-1]
    assert last["choices"] == [] and events[0]["choices"][0]["delta"]["role"] == "assistant"
    grains = surface.metered(1)[-1][1]
    assert last["usage"]["cost_grains"] == grains + compute_fee(grains, FEE_BPS) > 0
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    assert all(e["choices"] for e in stream_events(surface, chat()))  # not asked: no chunk without choices


def test_tool_calls_stream_as_openai_streams_them_and_are_billed(surface: Surface) -> None:
    events = stream_events(surface, chat('{"city": "Paris"}', tools=[WEATHER], tool_choice="required"))
    calls = [e["choices"][0]["delta"]["tool_calls"][0] for e in events if e["choices"][0]["delta"].get("tool_calls")]
    assert calls[0]["function"] == {"name": "get_weather", "arguments": ""} and calls[0]["id"]
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city":"Paris"}'
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls" and surface.metered(1)[-1][1] > 0
    unary = surface.post(chat('{"city": "Paris"}', tools=[WEATHER], tool_choice="required")).json()
    assert unary["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'


def test_a_structured_answer_that_misses_its_schema_is_not_paid(surface: Surface) -> None:
    good = surface.post(chat('{"city": "Paris"}', response_format=CITY))
    assert good.status_code == 200 and orjson.loads(good.json()["choices"][0]["message"]["content"]) == {
        "city": "Paris"}
    paid = len(surface.metered(1))
    bad = surface.post(chat('{"town": "Paris"}', response_format=CITY))  # every echo miner answers off the schema
    assert bad.status_code == 503 and len(surface.metered()) == paid


def test_n_choices_are_answered_and_their_tokens_add_up(surface: Surface) -> None:
    answer = surface.post(chat(n=2, logprobs=True, top_logprobs=1)).json()
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    assert answer["usage"]["completion_tokens"] == 6
    assert answer["choices"][1]["logprobs"]["content"][0]["token"] == "one"


def test_unknown_fields_are_refused_by_name_before_any_miner_works(surface: Surface) -> None:
    for body, named in ((chat(temprature=0), "temprature"), (chat(functions=[]), "functions")):
        answer = surface.post(body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "unknown_field"
        assert f"'{named}'" in answer.json()["error"]["message"]
    assert surface.post(chat(user="me", metadata={"a": "b"})).status_code == 200  # ignored, as OpenAI does
    assert sum(backend.calls for backend in surface.backends.values()) == 1


def test_a_miner_that_did_not_answer_is_asked_again_soon_and_one_that_did_is_not(surface: Surface) -> None:
    seen: dict[tuple[str, str], float] = {}
    miners = MinerClient(key("gateway"), timeout_s=5, allow=[])  # nothing allowed: no miner is reachable
    answered = MinerClient(key("gateway"), timeout_s=5, allow=[c.url.removeprefix("http://")
                                                                for c in surface.directory.candidates])
    asyncio.run(refresh_capabilities(surface.directory, miners, seen))
    assert surface.directory.capabilities[surface.hotkeys["q8"]] == {}  # refused locally: announces nothing for now
    not_answered = dict(seen)
    asyncio.run(refresh_capabilities(surface.directory, answered, seen))
    assert seen == not_answered  # asked again only once UNANSWERED_RETRY_S passed, not on every sync
    for pair in seen:
        seen[pair] -= UNANSWERED_RETRY_S
    asyncio.run(refresh_capabilities(surface.directory, answered, seen))
    assert surface.directory.capabilities[surface.hotkeys["q8"]]["quantization"] == "q8_0"
    asked = dict(seen)
    for pair in seen:
        seen[pair] -= UNANSWERED_RETRY_S
    asyncio.run(refresh_capabilities(surface.directory, answered, seen))
    q8 = (surface.hotkeys["q8"], next(c.url for c in surface.directory.candidates if c.hotkey == surface.hotkeys["q8"]))
    assert seen[q8] == asked[q8] - UNANSWERED_RETRY_S  # it answered: not asked again before CAPABILITIES_EVERY_S
