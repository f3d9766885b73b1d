"""The async client that validators and gateways use to call miners: signs each request, checks each answer.

It sends through ``inference.http`` (keep-alive connections, httptools' C parser): per call it costs little more
than the two ed25519 operations a signed round trip needs on the caller's side (bench/miner_rpc.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.client.signing import NONCE, sign_request, verify_answer
from gridmint.inference.http import HttpError, HttpPool

__all__ = ["Answer", "HttpError", "MinerClient"]


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
        self.timeout_s = timeout_s
        self._pool = HttpPool(max_per_host=connections)

    async def __aenter__(self) -> MinerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pool.close()

    async def call(self, base_url: str, path: str, miner: str, payload: dict[str, Any],
                   timeout_s: float | None = None) -> Answer:
        """POST ``payload`` to the miner at ``base_url`` whose hotkey address is ``miner``. HTTP errors and bad
        signatures come back in the Answer (``signed`` tells); transport failures raise HttpError."""
        body = orjson.dumps(payload)
        headers = sign_request(self.key, miner, body)
        headers["content-type"] = "application/json"
        started = time.perf_counter()
        response = await self._pool.post(base_url + path, body, headers, timeout_s or self.timeout_s)
        latency = time.perf_counter() - started
        signed = False
        if response.status == 200 and "text/event-stream" not in response.headers.get("content-type", ""):
            try:
                verify_answer(response.headers, response.body, miner, int(headers[NONCE]), self.address)
                signed = True
            except ChainError:  # an answer that does not verify counts as unsigned, which scores 0
                signed = False
        return Answer(response.status, response.body, latency, signed)
