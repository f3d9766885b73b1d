"""The async client that validators and gateways use to call miners: signs each request, checks each answer.

aiohttp rather than httpx here: its C HTTP parser and connection pool keep a validator's or gateway's side of a
signed round trip small (bench/miner_rpc.py measures both sides together).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.client.signing import NONCE, sign_request, verify_answer


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    latency_s: float
    signed: bool  # True when the miner's signature over the body verified

    def json(self) -> Any:
        return orjson.loads(self.body)


class MinerClient:
    def __init__(self, key: PrivateKey, timeout_s: float = 30.0, connections: int = 64) -> None:
        self.key = key
        self.address = format_address(key.address)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connector_limit = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MinerClient:
        self._session = aiohttp.ClientSession(
            timeout=self.timeout, connector=aiohttp.TCPConnector(limit=self._connector_limit))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, base_url: str, path: str, miner: str, payload: dict[str, Any]) -> Answer:
        """POST ``payload`` to the miner at ``base_url`` whose hotkey address is ``miner``; never raises for HTTP
        errors or bad signatures (``Answer.signed`` tells), only for transport failures and timeouts."""
        if self._session is None:
            raise RuntimeError("use MinerClient inside 'async with'")
        body = orjson.dumps(payload)
        headers = sign_request(self.key, miner, body)
        headers["content-type"] = "application/json"
        started = time.perf_counter()
        async with self._session.post(base_url + path, data=body, headers=headers) as response:
            raw = await response.read()
            status = response.status
            answer_headers = {k.lower(): v for k, v in response.headers.items()}
        latency = time.perf_counter() - started
        signed = False
        if status == 200 and "text/event-stream" not in answer_headers.get("content-type", ""):
            try:
                verify_answer(answer_headers, raw, miner, int(headers[NONCE]), self.address)
                signed = True
            except ChainError:  # an answer that does not verify counts as unsigned, which scores 0
                signed = False
        return Answer(status, raw, latency, signed)
