"""MinerClient against a real miner process on loopback: signed answers verify; failures are clear."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.inference.client import HttpError, MinerClient
from gridmint.ports import free_port
from tests.support.waiting import wait_healthy

pytestmark = pytest.mark.slow

MINER_SEED, CALLER_SEED = b"\x31" * 32, b"\x32" * 32
MINER_MAIN = """
import sys
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import CallerPolicy
caller = PrivateKey(bytes.fromhex(sys.argv[2]))
serve_miner(MinerApp(PrivateKey(bytes.fromhex(sys.argv[1])), EchoBackend(),
                     CallerPolicy(validators={format_address(caller.address)})), "127.0.0.1", int(sys.argv[3]))
"""



def test_calls_through_a_real_socket() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-c", MINER_MAIN, MINER_SEED.hex(), CALLER_SEED.hex(), str(port)])
    try:
        wait_healthy(url, process, timeout_s=20)
        miner = format_address(PrivateKey(MINER_SEED).address)
        payload = {"model": "echo", "messages": [{"role": "user", "content": "over the wire"}]}
        allow = [f"127.0.0.1:{port}"]  # a loopback miner is reached only when named exactly

        async def scenario() -> None:
            async with MinerClient(PrivateKey(CALLER_SEED), timeout_s=5, allow=allow) as client:
                answers = await asyncio.gather(*(client.call(url, "/v1/chat/completions", miner, payload)
                                                 for _ in range(20)))
                assert all(a.status == 200 and a.signed for a in answers)
                assert answers[0].json()["choices"][0]["message"]["content"] == "over the wire"
                impostor = await client.call(url, "/v1/chat/completions", format_address(PrivateKey(b"\x33" * 32)
                                                                                          .address), payload)
                assert impostor.status == 421 and not impostor.signed
            async with MinerClient(PrivateKey(b"\x34" * 32), timeout_s=5, allow=allow) as stranger:
                refused = await stranger.call(url, "/v1/chat/completions", miner, payload)
                assert refused.status == 403 and refused.json()["error"]["code"] == "auth/not_permitted"
            async with MinerClient(PrivateKey(CALLER_SEED), timeout_s=5, allow=allow) as client:
                for _ in range(3):  # the connection goes back to the pool after a finished stream
                    async with client.stream(url, "/v1/chat/completions", miner, {**payload, "stream": True}) as sse:
                        events = [event async for event in sse.events()]
                    assert sse.status == 200 and sse.done and sse.signed
                    assert sse.usage is not None and sse.usage["completion_tokens"] > 0
                    assert events[-1] == b"data: [DONE]\n\n" and all(e.endswith(b"\n\n") for e in events)
                    text = b"".join(events)
                    assert b"over" in text and b"wire" in text
            closed = free_port()
            async with MinerClient(PrivateKey(CALLER_SEED), timeout_s=2, allow=[f"127.0.0.1:{closed}"]) as client:
                with pytest.raises(HttpError, match="cannot connect"):
                    await client.call(f"http://127.0.0.1:{closed}", "/v1/chat/completions", miner, payload)

        asyncio.run(scenario())
    finally:
        process.terminate()
        process.wait(timeout=10)
