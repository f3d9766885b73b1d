"""Asking a miner to sign the gateway's cumulative receipts (``POST /v1/receipts`` on the miner).

The request is signed with the gateway's account key (``client.signing``), so the miner knows which gateway asks
and checks each acknowledgement against it; the answer must carry the miner's signature over its body (its hotkey
key in ``x-gm-signer``), and every receipt signature in it is checked here with ``receipts.miner_signed`` before
it is used: a settlement carrying one bad signature would be refused whole by the chain. A miner that does not
answer, answers unsigned or refuses a receipt leaves that usage for the next period; nothing here raises for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.receipts import Receipt, acknowledge_receipt, miner_signed
from gridmint.client.signing import NONCE, SIGNER, sign_request, verify_answer
from gridmint.inference.client import miner_url
from gridmint.inference.http import HttpError, HttpPool

log = logging.getLogger("gridmint.gateway")

PATH = "/v1/receipts"
MAX_PER_CALL = 256  # the miner's own bound


@dataclass(frozen=True)
class Signed:
    miner_key: bytes  # the miner's hotkey public key (its address is the receipt's miner)
    signature: bytes


@dataclass(frozen=True)
class Outcome:
    """One receipt's fate: signed, or why not (the miner's error code, or what went wrong in the call)."""

    signed: Signed | None
    error: str | None


def _body(key: PrivateKey, chain_id: str, receipts: list[Receipt]) -> bytes:
    return orjson.dumps({"chain_id": chain_id, "receipts": [
        {"line": r.line, "consumer": format_address(r.consumer), "tokens": r.tokens, "grains": r.grains,
         "requests": r.requests, "ack": acknowledge_receipt(key, r).hex()} for r in receipts]})


async def ask(pool: HttpPool, key: PrivateKey, url: str, miner: str, chain_id: str, receipts: list[Receipt],
              timeout_s: float = 15.0) -> list[Outcome]:
    """The miner at ``url`` (hotkey ``miner``) asked to sign ``receipts`` (at most ``MAX_PER_CALL``, all for this
    miner): one Outcome per receipt, in order."""
    if len(receipts) > MAX_PER_CALL:
        raise ValueError(f"at most {MAX_PER_CALL} receipts per call")
    body = _body(key, chain_id, receipts)
    headers = sign_request(key, miner, body)
    headers["content-type"] = "application/json"
    caller = format_address(key.address)

    def failed(why: str) -> list[Outcome]:
        log.warning("Miner %s at %s signed no receipt (%s); its usage waits for the next period.", miner, url, why)
        return [Outcome(None, why)] * len(receipts)

    try:
        response = await pool.post(miner_url(url, PATH), body, headers, timeout_s)
    except (HttpError, OSError) as error:
        return failed(f"unreachable: {error}")
    if response.status != 200:
        return failed(f"answered {response.status}: {response.body[:200]!r}")
    try:
        verify_answer(response.headers, response.body, miner, int(headers[NONCE]), caller)
        miner_key = bytes.fromhex(response.headers.get(SIGNER, ""))
        answers = orjson.loads(response.body)["receipts"]
        if not isinstance(answers, list) or len(answers) != len(receipts):
            raise ValueError(f"{len(answers) if isinstance(answers, list) else 'no'} answers for {len(receipts)}")
    except (ChainError, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as error:
        return failed(f"an answer that does not verify or parse: {error}")
    outcomes = []
    for receipt, answer in zip(receipts, answers, strict=True):
        outcomes.append(_outcome(receipt, miner_key, answer))
    refused = [o.error for o in outcomes if o.signed is None]
    if refused:
        log.warning("Miner %s refused %d of %d receipts (%s); that usage waits for the next period.", miner,
                    len(refused), len(receipts), ", ".join(sorted({str(e) for e in refused})))
    return outcomes


def _outcome(receipt: Receipt, miner_key: bytes, answer: object) -> Outcome:
    if not isinstance(answer, dict):
        return Outcome(None, "malformed")
    if answer.get("signature") is None:
        return Outcome(None, str(answer.get("error") or "refused")[:100])
    try:
        signature = bytes.fromhex(str(answer["signature"]))
    except ValueError:
        return Outcome(None, "malformed")
    if len(signature) != 64 or not miner_signed(receipt, miner_key, signature):
        return Outcome(None, "bad_signature")
    return Outcome(Signed(miner_key, signature), None)
