"""Hostile miners cannot break the ones who measure nor the gateway, nor steer their requests anywhere else.

One embedding subnet on a real devnode: an honest wordllama miner (`gridmint miner run`), a real validator
(`gridmint validator run`) and a real gateway (`gridmint gateway run`), each told exactly which loopback miners it
may reach (``--allow-endpoint``). Beside the honest miner, registered miners misbehave:

- URLs the chain refuses: a port above 65,535, a host outside ASCII, userinfo, a query aimed at the node's RPC;
- URLs the chain takes but that point where no caller may go: the node's own RPC port, a loopback listener nobody
  allowed (a trap that counts its connections, reached both by address and by the name ``localhost``) and a private
  address;
- small HTTP servers written here that answer, signed with the miner's hotkey: a malformed body, NaN, numbers too
  large for a norm; and unsigned: a body past the size bound, an endless stream.

The validator keeps running and gives every hostile miner 0 (the chain's incentive shows it), the gateway fails
over from each to the honest miner (the consumer gets its answer), an endless stream to a consumer ends with an
error event and costs nothing, the consumer's unknown fields never reach a miner, and the trap sees no connection.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gridmint.chain.crypto import PrivateKey, address_of, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.subnets import MsgAnnounceEndpoint
from gridmint.client.chain_client import ChainClient
from gridmint.client.signing import CALLER, NONCE, sign_answer
from gridmint.client.wallet import open_wallet
from gridmint.inference.backends.wordllama import WORDLLAMA_CONFIG, WORDLLAMA_DIM
from gridmint.ports import free_port
from tests.support.gateway_network import (
    ledger_rows,
    miner_port,
    start_gateway,
    start_miner,
    start_validator,
    wait_for_miners,
    wait_for_models,
)
from tests.support.live_subnet import live_subnet
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

ONE = 1 << 30
MODEL = f"wordllama-{WORDLLAMA_CONFIG}-{WORDLLAMA_DIM}"
ENDLESS_CHAT = "endless-chat"
HOSTILE = ("malformed", "nan", "huge", "oversize", "endless")  # HTTP servers below, reachable (allowed)
UNREACHABLE = ("rpc", "trap", "named", "private")  # announce addresses no caller may reach
EVENT = b"data: " + orjson.dumps({"choices": [{"delta": {"content": "x" * 65_000}}]}) + b"\n\n"


class HostileMiners:
    """The misbehaving miners' HTTP servers and a trap listener, on one event loop in a thread."""

    def __init__(self, keys: dict[str, PrivateKey]) -> None:
        self.keys = keys
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (miner, path, JSON body) as received
        self.trapped = 0  # connections the trap saw
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.Server] = []

    def start(self, ports: dict[str, int], trap_port: int) -> None:
        self.thread.start()
        for mode, port in ports.items():
            self._listen(lambda r, w, mode=mode: self._serve(mode, r, w), port)
        self._listen(self._trap, trap_port)

    def _listen(self, handler: Any, port: int) -> None:
        self.servers.append(asyncio.run_coroutine_threadsafe(
            asyncio.start_server(handler, "127.0.0.1", port), self.loop).result(10))

    def stop(self) -> None:
        for server in self.servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _trap(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.trapped += 1
        writer.close()

    async def _serve(self, mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                path = head[0].split(" ")[1]
                fields = (line.partition(":") for line in head[1:] if line)
                headers = {name.strip().lower(): value.strip() for name, _, value in fields}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = orjson.loads(body) if body else {}
                self.requests.append((mode, path, request))
                await self._answer(mode, headers, request, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the caller hung up, as it should past a bound
        finally:
            writer.close()

    async def _answer(self, mode: str, headers: dict[str, str], request: dict[str, Any],
                      writer: asyncio.StreamWriter) -> None:
        count = len(request.get("input") or [0])
        if mode == "oversize":  # 17 MiB announced and sent: past the 16 MiB bound on an answer
            size = 17 * 1024 * 1024
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % size)
            for _ in range(17):
                writer.write(b" " * (1024 * 1024))
                await writer.drain()
            return
        if mode == "endless":  # a stream that never ends, for unary and streaming calls alike
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            while True:
                writer.write(b"%x\r\n%s\r\n" % (len(EVENT), EVENT))
                await writer.drain()
        vectors: bytes
        if mode == "malformed":
            vectors = b'"no vectors here"'
        elif mode == "nan":
            vectors = orjson.dumps([{"embedding": [1.0] * WORDLLAMA_DIM}] * count).replace(b"1.0", b"NaN")
        else:  # huge: finite numbers whose norm is not
            vectors = orjson.dumps([{"embedding": [1e200] * WORDLLAMA_DIM}] * count)
        body = b'{"object": "list", "model": "%s", "data": %s}' % (MODEL.encode(), vectors)
        caller = format_address(address_of(bytes.fromhex(headers[CALLER])))
        proof = sign_answer(self.keys[mode], int(headers[NONCE]), caller, body)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
                     + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in proof.items()) + b"\r\n" + body)
        await writer.drain()


def _refused_on_chain(client: ChainClient, key: PrivateKey, url: str) -> str:
    with pytest.raises(ChainError) as refused:
        client.execute(key, [MsgAnnounceEndpoint(1, url, [MODEL], 1_000_000, 1)])
    assert refused.value.kind.name == "invalid_endpoint", refused.value
    return str(refused.value)


def test_hostile_miners_score_zero_fail_over_and_reach_nothing_outside_the_allow_list(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("owner", "val", "words", *HOSTILE, *UNREACHABLE)
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=40, modality="embedding",
                     others=("gw", "consumer")) as live:
        keys = {name: open_wallet(name, live.wallets).hotkey("default") for name in names[2:]}
        hotkey = {name: format_address(key.address) for name, key in keys.items()}
        rpc_port = int(live.node.url.rsplit(":", 1)[1])
        trap_port = free_port()

        # 1. The chain refuses the URLs no caller could read one way only; nothing is announced.
        with ChainClient(live.node.url) as client:
            for url in ("http://127.0.0.1:99999", "http://\u043c\u0438\u0440.example:8091",
                        f"http://user@127.0.0.1:{trap_port}", f"http://127.0.0.1:{rpc_port}/?"):
                message = _refused_on_chain(client, keys["private"], url)
                assert "expected http:// or https://" in message
        assert all(entry["endpoint"] is None for entry in live.metagraph()["uids"])

        hostile = HostileMiners(keys)
        hostile.start({name: miner_port(tmp_path, name) for name in HOSTILE}, trap_port)
        allowed = ("words", *HOSTILE)  # exactly the loopback miners of this test; not the trap, not the node
        gateway = start_gateway(tmp_path, "gw", miners=allowed)
        words = start_miner(tmp_path, "words", 1, "wordllama", "0.002")
        validator = None
        try:
            for name in HOSTILE:
                models = ("--model", MODEL, *(("--model", ENDLESS_CHAT) if name == "endless" else ()))
                live.run("endpoint", "announce", "1", f"http://127.0.0.1:{miner_port(tmp_path, name)}", *models,
                         "--price", "0.001", "--wallet", name)
            for name, url in (("rpc", f"http://127.0.0.1:{rpc_port}"), ("trap", f"http://127.0.0.1:{trap_port}"),
                              ("named", f"http://localhost:{trap_port}/"), ("private", "http://10.0.0.1:8091")):
                live.run("endpoint", "announce", "1", url, "--model", MODEL, "--price", "0.001", "--wallet", name)

            allow = [arg for name in allowed for arg in ("--allow-endpoint", f"127.0.0.1:{miner_port(tmp_path, name)}")]
            validator = start_validator(tmp_path, "--interval", "0.3", "--timeout", "5", *allow)

            # 2. The gateway: each hostile or unreachable miner (cheapest, so tried first) fails over to the honest
            #    one; a field no parser reads is refused by name, one OpenAI ignores is dropped: neither reaches a
            #    miner.
            wait_for_models(gateway, MODEL, ENDLESS_CHAT)
            wait_for_miners(gateway, 1 + len(HOSTILE) + len(UNREACHABLE))
            live.run("credit", "open", gateway.url, "20", "--wallet", "consumer")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            auth = {"authorization": f"Bearer {api_key}"}
            refused = httpx.post(f"{gateway.url}/v1/embeddings", headers=auth, timeout=60, json={
                "model": MODEL, "input": ["the cat sat"], "evil": {"jsonrpc": "2.0"}})
            assert refused.status_code == 400 and "'evil'" in refused.json()["error"]["message"]

            # The honest miner answers the gateway once it has synced the gateway's registration (a miner refuses
            # callers it does not know yet; on a loaded machine that takes a while): failover is shown after that.
            def honest_answers() -> bool:
                return httpx.post(f"{gateway.url}/v1/embeddings", headers=auth, timeout=60, json={
                    "model": MODEL, "input": ["ready"], "provider": {"only": [hotkey["words"]]}}).status_code == 200
            wait_for(honest_answers, "the honest miner to answer through the gateway", 60, 0.5,
                     lambda: gateway.log()[-3_000:])
            for name in (*HOSTILE, *UNREACHABLE):
                answer = httpx.post(f"{gateway.url}/v1/embeddings", headers=auth, timeout=60, json={
                    "model": MODEL, "input": ["the cat sat", "a dog ran"], "user": "ignored, as OpenAI does",
                    "provider": {"sort": "price", "only": [hotkey[name], hotkey["words"]]}})
                assert answer.status_code == 200, (name, answer.text, gateway.log()[-3_000:])
                assert answer.headers["x-gridmint-miner"] == hotkey["words"], name
                assert len(answer.json()["data"]) == 2
            for name in (*HOSTILE, *UNREACHABLE):
                assert f"Miner {hotkey[name]} (subnet 1" in gateway.log(), f"{name} was never tried:\n{gateway.log()}"
            assert f"refused to connect to 127.0.0.1:{rpc_port}: a loopback address" in gateway.log()
            assert "refused to connect to 10.0.0.1:8091: a private address" in gateway.log()
            # (GET /v1/models is the gateway reading what each miner announces besides plain text: whatever a
            # hostile miner answers there, it announces nothing and the gateway goes on.)
            assert hostile.requests and all(path == "/v1/embeddings" and set(body) == {"model", "input"}
                                            for _, path, body in hostile.requests
                                            if path not in ("/v1/chat/completions", "/v1/models"))

            # 3. An endless stream to a consumer: cut at the stream's bound, an error event, and nothing charged.
            with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", headers=auth, timeout=120, json={
                    "model": ENDLESS_CHAT, "messages": [{"role": "user", "content": "go on"}], "stream": True,
                    "max_tokens": 8}) as streamed:
                received = b"".join(streamed.iter_bytes())
            assert streamed.status_code == 200 and b"miner_failed_mid_stream" in received[-2_000:]
            assert b"larger than" in received[-2_000:]
            chat_bodies = [body for _, path, body in hostile.requests if path == "/v1/chat/completions"]
            assert chat_bodies and set(chat_bodies[0]) == {"model", "messages", "max_tokens", "temperature", "stream"}
            assert {miner for _, miner, _, _, _ in ledger_rows(tmp_path)} == {hotkey["words"]}  # only its answers paid

            # 4. The validator: the honest miner earns the incentive, every other miner none, and it keeps running.
            uid = {entry["hotkey"]: entry["uid"] for entry in live.metagraph()["uids"]}
            graph = live.wait_for(lambda g: g["uids"][uid[hotkey["words"]]]["incentive"] > 0.9 * ONE,
                                  "the honest miner's incentive", timeout_s=120)
            for name in (*HOSTILE, *UNREACHABLE):
                assert graph["uids"][uid[hotkey[name]]]["incentive"] == 0, name
            validator_log = validator.log()
            assert validator.process.poll() is None, validator_log[-3000:]
            for name in (*HOSTILE, *UNREACHABLE):
                scores = re.findall(rf"UID {uid[hotkey[name]]} \(\S+ at \S+\): score ([0-9.]+)", validator_log)
                assert scores and set(scores) == {"0.000"}, (name, scores)
            assert "Traceback" not in validator_log and "Traceback" not in gateway.log()
            assert f"refused to connect to 127.0.0.1:{rpc_port}" in validator_log
            assert "the answer is larger than" in validator_log
            assert gateway.process.poll() is None

            # 5. No validator or gateway request ever reached the trap, by address or by name.
            assert hostile.trapped == 0
        finally:
            if validator is not None:
                validator.stop()
            words.stop()
            gateway.stop()
            hostile.stop()
