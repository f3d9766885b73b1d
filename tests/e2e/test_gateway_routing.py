"""Routing, failover and errors through a real gateway process in front of three real miner processes (echo
backend: this is about the protocol, not the model). Incentives come from a validator's weights through Yuma on a
live devnode: m1 is ranked first, m2 second, and the third ("garbage") gets no weight."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gridmint.client.wallet import open_wallet
from tests.support.gateway_network import start_gateway, start_miner, wait_for_miners, wait_for_models
from tests.support.live_subnet import LiveSubnet, live_subnet
from tests.support.processes import LoggedProcess
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

ONE = 1 << 30
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "route me"}], "max_tokens": 8}


def _rank_by_weights(live: LiveSubnet) -> dict[str, float]:
    live.run("subnet", "set-param", "1", "commit_reveal", "0", "--wallet", "owner")
    uids = {entry["hotkey"]: entry["uid"] for entry in live.metagraph()["uids"]}
    weight = {"m1": 65535, "m2": 20000, "garbage": 0}
    pairs = [f"{uids[open_wallet(name, live.wallets).hotkey_address('default')]}={value}"
             for name, value in weight.items()]
    live.run("weights", "set", "1", *pairs, "--wallet", "val")

    def incentives(graph: dict[str, Any]) -> dict[str, float]:
        by_hotkey = {entry["hotkey"]: entry["incentive"] / ONE for entry in graph["uids"]}
        return {name: by_hotkey[open_wallet(name, live.wallets).hotkey_address("default")] for name in weight}

    graph = live.wait_for(lambda g: incentives(g)["m1"] > incentives(g)["m2"] > 0.05, "incentives from the weights")
    return incentives(graph)


def _post(url: str, key: str | None, body: Any, raw: bytes | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=30,
                      content=raw if raw is not None else json.dumps(body).encode())


def _miner_of(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    return answer.headers["x-gridmint-miner"]


def test_requests_follow_the_ranking_fail_over_and_honour_preferences(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("owner", "val", "m1", "m2", "garbage")
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=10, others=("gw", "consumer", "broke", "spammer")) \
            as live:
        incentive = _rank_by_weights(live)
        assert incentive["garbage"] < 0.01
        gateway = start_gateway(tmp_path, "gw", "--rate", "20", "--burst", "100",
                                miners=("m1", "m2", "garbage"))
        miners: dict[str, LoggedProcess] = {}
        try:
            for name, price in (("m1", "0.001"), ("m2", "0.002"), ("garbage", "0.0005")):
                # room for the flood below, which must meet the rate limit, not the miners' busy limit
                miners[name] = start_miner(tmp_path, name, 1, "echo", price, "--max-concurrency", "512")
            hotkey = {name: open_wallet(name, live.wallets).hotkey_address("default") for name in miners}
            wait_for_models(gateway, "echo")
            wait_for_miners(gateway, 3)
            live.run("credit", "open", gateway.url, "20", "--wallet", "consumer")
            live.run("credit", "open", gateway.url, "20", "--wallet", "spammer")
            key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]

            # The top-ranked miner serves everything while it is healthy; the garbage miner gets nothing.
            assert {_miner_of(_post(gateway.url, key, CHAT)) for _ in range(8)} == {hotkey["m1"]}
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
            streamed = client.chat.completions.with_raw_response.create(stream=True, **CHAT)  # type: ignore[call-overload]
            assert streamed.headers["x-gridmint-miner"] == hotkey["m1"]
            assert "route" in "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)

            # Preferences: ignore, only, max price (MINT per 1k tokens), sort by price.
            prefer = {
                json.dumps({"ignore": [hotkey["m1"]]}): hotkey["m2"],
                json.dumps({"only": [hotkey["garbage"]]}): hotkey["garbage"],
                json.dumps({"max_price": "0.0008"}): hotkey["garbage"],
                json.dumps({"sort": "price"}): hotkey["garbage"],
                json.dumps({"max_price": "0.0015", "ignore": [hotkey["m1"], hotkey["garbage"]]}): None,
            }
            for provider, expected in prefer.items():
                answer = _post(gateway.url, key, {**CHAT, "provider": json.loads(provider)})
                if expected is None:
                    assert answer.status_code == 404 and answer.json()["error"]["code"] == "no_matching_miner"
                else:
                    assert _miner_of(answer) == expected, provider
            bad = _post(gateway.url, key, {**CHAT, "provider": {"sort": "random"}})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_preferences"

            # Kill the top miner: every request still succeeds, through m2 (never the garbage miner).
            miners["m1"].kill()
            served = [_miner_of(_post(gateway.url, key, CHAT)) for _ in range(10)]
            assert set(served) == {hotkey["m2"]}
            with client.chat.completions.create(stream=True, **CHAT) as stream:  # type: ignore[call-overload]
                assert "route" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert "failed" in gateway.log() and "trying the next one" in gateway.log()

            _errors_are_openai_shaped(live, gateway, key)
        finally:
            for process in (*miners.values(), gateway):
                process.stop()


def _errors_are_openai_shaped(live: LiveSubnet, gateway: LoggedProcess, key: str) -> None:
    def error_of(answer: httpx.Response, status: int, code: str) -> None:
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == code and error["message"]

    error_of(_post(gateway.url, None, CHAT), 401, "missing_api_key")
    error_of(_post(gateway.url, "gmk_not-a-key", CHAT), 401, "invalid_api_key")
    error_of(_post(gateway.url, key, {**CHAT, "model": "no-such-model"}), 404, "model_not_found")
    error_of(_post(gateway.url, key, None, raw=b"{not json"), 400, "bad_request")
    error_of(_post(gateway.url, key, {"model": "echo", "messages": "hello"}), 400, "bad_request")
    broke = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "broke")["api_key"]
    error_of(_post(gateway.url, broke, CHAT), 402, "insufficient_credit")

    # The official client maps them to its own exceptions, unchanged.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="gmk_wrong", max_retries=0).chat.completions.create(
            **CHAT)
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0).chat.completions.create(
            **{**CHAT, "model": "no-such-model"})

    # One key over its rate gets 429s; the others are not slowed.
    spammer = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "spammer")["api_key"]

    async def flood() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as http:
            answers = await asyncio.gather(*(http.post(f"{gateway.url}/v1/chat/completions", json=CHAT,
                                                       headers={"authorization": f"Bearer {spammer}"})
                                             for _ in range(160)))
        limited = [a for a in answers if a.status_code == 429]
        assert limited and limited[0].json()["error"]["code"] == "rate_limit_exceeded"
        return [a.status_code for a in answers]

    statuses = asyncio.run(flood())
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 100
    assert _post(gateway.url, key, CHAT).status_code == 200


def test_a_killed_gateway_loses_no_metered_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch, names=("owner", "val", "m1"), tempo=50_000, permit=False,
                     others=("gw", "consumer")) as live:
        # The gateway registers first, so that the miner allows it from its first metagraph sync.
        gateway = start_gateway(tmp_path, "gw", "--settle-seconds", "3600", miners=("m1",))  # no settlement yet
        miner = start_miner(tmp_path, "m1", 1, "echo", "0.001")
        try:
            wait_for_models(gateway, "echo")
            live.run("credit", "open", gateway.url, "5", "--wallet", "consumer")
            key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            costs = [int(_post(gateway.url, key, CHAT).headers["x-gridmint-cost"]) for _ in range(3)]
            gateway.kill()  # SIGKILL: no shutdown settlement
            gateway = start_gateway(tmp_path, "gw", "--settle-seconds", "0.5", miners=("m1",))
            consumer = open_wallet("consumer", live.wallets).address
            gateway_address = open_wallet("gw", live.wallets).address
            wait_for(lambda: live.run("credit", "status", "--wallet", "consumer")[0]["spent"] > 0,
                     "the restarted gateway to settle", timeout_s=30, interval_s=0.2, detail=gateway.log)
            line = live.run("credit", "status", "--wallet", "consumer")[0]
            assert line["gateway"] == gateway_address and line["spent"] == sum(costs) + sum(costs) // 100
            assert "Settled batch 1" in gateway.log()
            assert live.run("credit", "status", "--wallet", "consumer")[0]["consumer"] == consumer
            # The same API key still works after the restart (keys are kept too).
            assert _post(gateway.url, key, CHAT).status_code == 200
        finally:
            gateway.stop()
            miner.stop()
