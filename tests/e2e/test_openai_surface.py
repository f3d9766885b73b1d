"""The official `openai` package, unchanged but for base_url and api_key, through a real gateway to a real SmolLM2
miner (llama.cpp) on a live devnode: ``chat.completions.parse`` with a pydantic model, a tool call round trip
(streaming and not), logprobs, n=2, a streamed usage chunk with the cost, and a fallback list served by the second
model when the first has no healthy miner, billed at the model that answered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from gridmint.chain.credit import compute_fee
from gridmint.client.wallet import open_wallet
from tests.support.gateway_network import ledger_rows, start_gateway, start_miner, wait_for_models
from tests.support.live_subnet import live_subnet
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

SMOLLM2 = "smollm2-135m-instruct"
GHOST = "ghost-model"  # announced on chain by a miner that is then stopped
FEE_BPS = 100
SMOL_PRICE = 2_000_000  # grains per 1k tokens ("0.002")
WEATHER: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class City(BaseModel):
    city: str
    country: str


def tool_round_trip(client: openai.OpenAI, stream: bool) -> str:
    """Ask, get a call to get_weather, answer it, and return the model's final text."""
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        calls: dict[int, dict[str, str]] = {}
        with client.chat.completions.create(model=SMOLLM2, messages=messages, tools=[WEATHER], tool_choice="required",
                                            max_tokens=32, stream=True) as chunks:
            for chunk in chunks:
                for delta in chunk.choices[0].delta.tool_calls or ():
                    call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = delta.id or call["id"]
                    if delta.function is not None:
                        call["name"] += delta.function.name or ""
                        call["arguments"] += delta.function.arguments or ""
        assert list(calls) == [0] and calls[0]["name"] == "get_weather" and calls[0]["id"]
        call_id, arguments = calls[0]["id"], calls[0]["arguments"]
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]})
    else:
        first = client.chat.completions.create(model=SMOLLM2, messages=messages, tools=[WEATHER],
                                               tool_choice="required", max_tokens=32)
        assert first.choices[0].finish_reason == "tool_calls"
        [tool_call] = first.choices[0].message.tool_calls or []
        assert tool_call.type == "function" and tool_call.function.name == "get_weather"
        call_id, arguments = tool_call.id, tool_call.function.arguments
        messages.append(first.choices[0].message)  # the SDK's own message object goes back as it came
    assert isinstance(json.loads(arguments)["city"], str)
    messages.append({"role": "tool", "tool_call_id": call_id, "content": "22 degrees and sunny"})
    if not stream:
        final = client.chat.completions.create(model=SMOLLM2, messages=messages, tools=[WEATHER], tool_choice="none",
                                               max_tokens=32)
        assert final.choices[0].finish_reason in ("stop", "length") and not final.choices[0].message.tool_calls
        return final.choices[0].message.content or ""
    text = []
    with client.chat.completions.create(model=SMOLLM2, messages=messages, tools=[WEATHER], tool_choice="none",
                                        max_tokens=32, stream=True) as chunks:
        for chunk in chunks:
            text.append(chunk.choices[0].delta.content or "")
    return "".join(text)


def test_the_openai_package_uses_tools_structured_outputs_logprobs_and_fallbacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch, names=("owner", "val", "smol", "ghost", "gw", "consumer"),
                     tempo=50_000, permit=False) as live:
        gateway = start_gateway(tmp_path, "gw", "--fee-bps", str(FEE_BPS), miners=("smol", "ghost"))
        smol = start_miner(tmp_path, "smol", 1, "llama-cpp", "0.002")
        ghost = start_miner(tmp_path, "ghost", 1, "echo", "0.0001", "--model", GHOST)
        try:
            live.run("credit", "open", gateway.url, "50", "--blocks", "100000", "--wallet", "consumer")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            wait_for_models(gateway, SMOLLM2, GHOST)
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0, timeout=300)

            parsed = client.chat.completions.parse(
                model=SMOLLM2, messages=[{"role": "user", "content": "Name a city and its country."}],
                response_format=City, max_tokens=64)
            city = parsed.choices[0].message.parsed
            assert isinstance(city, City) and city.city and city.country

            assert tool_round_trip(client, stream=False).strip()
            assert tool_round_trip(client, stream=True).strip()

            scored = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Hi"}],
                                                    max_tokens=8, logprobs=True, top_logprobs=2)
            steps = scored.choices[0].logprobs.content if scored.choices[0].logprobs else None
            assert steps and "".join(s.token for s in steps) == scored.choices[0].message.content
            assert all(s.logprob <= 0 and len(s.top_logprobs) == 2 for s in steps)

            two = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=8, n=2)
            assert [c.index for c in two.choices] == [0, 1]

            usage_chunks = []
            with client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Hi"}],
                                                max_tokens=8, stream=True,
                                                stream_options={"include_usage": True}) as chunks:
                usage_chunks = [chunk for chunk in chunks if chunk.usage is not None and not chunk.choices]
            [last] = usage_chunks
            assert last.usage is not None and last.usage.total_tokens > 0
            extra = last.usage.model_extra or {}
            grains = (last.usage.total_tokens * SMOL_PRICE + 999) // 1000  # the chunk's counts are the billed ones
            assert extra["cost_grains"] == grains + compute_fee(grains, FEE_BPS) and float(extra["cost"]) > 0

            # A consumer who leaves a stream after its first chunk (a disconnect): the miner stops that generation
            # before serving anyone else, and the next greedy request gets the answer it got before.
            greedy: dict[str, Any] = {"model": SMOLLM2, "max_tokens": 12, "temperature": 0,
                                      "messages": [{"role": "user", "content": "Name a color."}]}
            alone = client.chat.completions.create(**greedy).choices[0].message.content
            with client.chat.completions.create(model=SMOLLM2, max_tokens=200, stream=True, messages=[
                    {"role": "user", "content": "Tell me a long story about the sea."}]) as chunks:
                next(iter(chunks))
            assert client.chat.completions.create(**greedy).choices[0].message.content == alone
            assert smol.process.poll() is None, smol.log()[-3_000:]

            # The ghost miner stops: its model has no healthy miner, and the list falls back to SmolLM2.
            # The gateway asks miners what they serve apart from listing them: wait for SmolLM2's announcement.
            def smol_capabilities() -> dict[str, Any] | None:
                entry = {m["id"]: m for m in wait_for_models(gateway, SMOLLM2)}[SMOLLM2]
                return entry.get("capabilities")  # type: ignore[no-any-return]

            announced = wait_for(smol_capabilities, "SmolLM2's capabilities in the model list", timeout_s=30,
                                 interval_s=0.2)
            assert announced["tools"] is True
            ghost.kill()
            rows = len(ledger_rows(tmp_path))
            fallback = client.chat.completions.create(model=GHOST, messages=[{"role": "user", "content": "Hi"}],
                                                      max_tokens=8, extra_body={"models": [SMOLLM2]})
            assert fallback.model == SMOLLM2 and fallback.usage is not None
            smol_hotkey = open_wallet("smol", live.wallets).hotkey_address("default")
            # The gateway writes its ledger just after the answer's last byte.
            wait_for(lambda: len(ledger_rows(tmp_path)) > rows, "the answer's ledger row", timeout_s=10,
                     interval_s=0.05)
            served = ledger_rows(tmp_path)[rows:]
            # Billed at SmolLM2's price, for at most the tokens its miner counted (the gateway caps counts by what
            # the text could hold), and the usage says exactly what the ledger holds.
            miner_grains = (fallback.usage.model_extra or {})["cost_details"]["miner_grains"]
            assert [(miner, grains) for _, miner, grains, _, _ in served] == [(smol_hotkey, miner_grains)]
            assert 0 < miner_grains <= (fallback.usage.total_tokens * SMOL_PRICE + 999) // 1000
            assert miner_grains % (SMOL_PRICE // 1000) == 0  # a whole number of tokens at SmolLM2's price
        finally:
            for process in (smol, ghost, gateway):
                process.stop()
