"""Probes that look like customers: challenges sent through a gateway as an ordinary consumer's requests.

A miner sees who signs each request. Asked directly, it sees a validator's hotkey and can answer probes with the
model it claims while it serves customers something cheaper. Sent through a gateway, a probe reaches the miner
signed by the gateway, like any customer's request; the validator is a consumer there with a credit line of its
own (opened from an account miners cannot tie to the validator: not its hotkey) and names the miner under test
with ``provider.only``. The gateway forwards the miner's signature over the answer with the nonce of its request
(``x-gm-signer``, ``x-gm-body``, ``x-gm-signature``, ``x-gm-nonce``), and the validator checks it against the
gateway's address as the chain lists it: the gateway can refuse to carry a probe but cannot write the answer.

What a refusal means decides who it counts against. The gateway refusing the validator's own request (401 key,
402 credit, 429 rate, 400 and 413 the request) measures nothing about the miner: ``GatewayRefusedError``, and the
round leaves that miner's average alone. Anything else that is not a signed 200 (404: the gateway will not route
to the miner, 503: the miner failed it) is what a customer of that gateway would get, and scores 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from gridmint.chain.errors import ChainError
from gridmint.client.signing import BODY, NONCE, SIGNATURE, SIGNER, verify_answer
from gridmint.inference import wire
from gridmint.inference.client import Answer
from gridmint.inference.http import MAX_ANSWER_BYTES, HttpPool

VALIDATORS_OWN_FAULT = (400, 401, 402, 413, 429)  # the gateway refused the validator's request, not the miner


class GatewayRefusedError(Exception):
    """The gateway refused the validator's own request (its key, credit, rate or body): no measurement."""


@dataclass(frozen=True)
class ProbeGateway:
    """Where probes go: the gateway's base URL, the API key of the validator's consumer account there, and the
    gateway's address as the chain lists it for that URL (the caller the miner signs its answers to)."""

    url: str
    api_key: str
    address: str


class GatewayProbes:
    """Asks miners through one gateway; an async context manager like MinerClient."""

    def __init__(self, gateway: ProbeGateway, connections: int = 64) -> None:
        self.gateway = gateway
        # The operator named this gateway: no address guard (it may well be on loopback or a private network).
        self._pool = HttpPool(max_per_host=connections, max_answer_bytes=MAX_ANSWER_BYTES)

    async def __aenter__(self) -> GatewayProbes:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pool.close()

    async def call(self, path: str, miner: str, payload: dict[str, Any], timeout_s: float) -> Answer:
        """POST the challenge to the gateway for the miner at hotkey address ``miner`` only. ``signed`` is True
        when the answer came from that miner with its signature for the gateway's request; transport failures
        raise HttpError, the gateway refusing the validator itself raises GatewayRefusedError."""
        body = orjson.dumps({**payload, "provider": {"only": [miner]}})
        headers = {"authorization": f"Bearer {self.gateway.api_key}", "content-type": "application/json"}
        started = time.perf_counter()
        response = await self._pool.post(self.gateway.url.rstrip("/") + path, body, headers, timeout_s)
        latency = time.perf_counter() - started
        if response.status in VALIDATORS_OWN_FAULT:
            raise GatewayRefusedError(f"the gateway refused the probe with HTTP {response.status}: "
                                      f"{response.body[:300].decode(errors='replace')}")
        # What is checked and scored is the miner's own answer: the gateway's cost, added to its usage, comes off.
        body = wire.without_cost(response.body)
        signed = response.status == 200 and response.headers.get("x-gridmint-miner") == miner and \
            _signed_by(response.headers, body, miner, self.gateway.address)
        return Answer(response.status, body, latency, signed)


def _signed_by(headers: dict[str, str], body: bytes, miner: str, gateway: str) -> bool:
    try:
        verify_answer({name: headers[name] for name in (SIGNER, BODY, SIGNATURE)}, body, miner, int(headers[NONCE]),
                      gateway)
    except (KeyError, ValueError, ChainError):
        return False
    return True
