"""The prediction validator's reading of one miner's answer (validator/prediction.py), offline: no chain is asked."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import orjson

from gridmint.chain.crypto import format_address
from gridmint.client.signing import BODY, NONCE, SIGNATURE, SIGNER
from gridmint.inference.client import Answer
from gridmint.inference.forecast_wire import Forecast, ForecastRequest, Series, answer_bytes_bound, forecast_answer
from gridmint.inference.validator.prediction import MAX_RECORDS, PredictionValidator
from tests.support.chain import key


def test_a_padded_answer_is_a_miss_whose_body_the_validator_does_not_keep() -> None:
    """Red team: the answer parser ignores fields it does not read, so a miner could pad every signed answer to the
    16 MiB a caller reads, and the prediction validator kept each body (pending, then in ``records`` for good):
    memory without end. A body over what its shape can take is now a miss, committed but not kept."""
    validator = PredictionValidator(key("prediction-validator"), 1, "http://127.0.0.1:9")
    miner = key("padding-miner")
    request = ForecastRequest("naive", 12, tuple(Series(str(i), np.arange(64.0)) for i in range(4)), 100)
    forecasts = [Forecast(s.id, np.full(12, -1.2345678901234567e-300), {},
                          np.full((100, 12), -1.2345678901234567e-300)) for s in request.series]
    honest = orjson.dumps(forecast_answer("naive", forecasts))
    padded = orjson.dumps({**forecast_answer("naive", forecasts), "padding": "x" * len(honest)})
    assert len(honest) <= answer_bytes_bound(request) < len(padded)
    for body, kept in ((honest, True), (padded, False)):
        answer = Answer(200, body, 0.01, True, {SIGNER: miner.public_key.hex(), NONCE: "7",
                                                BODY: hashlib.sha256(body).hexdigest(), SIGNATURE: "00"})
        received = validator._check(3, format_address(miner.address), 0, "1-2-x", request, answer)
        assert received.signed is not None and received.signed.body_sha256 == hashlib.sha256(body).hexdigest()
        assert (received.forecasts is not None, bool(received.body)) == (kept, kept), received.note
    validator.close()
    assert validator.records.maxlen == MAX_RECORDS


class SlowInBothPhases:
    """A client whose call takes what connecting then answering each just under the timeout would: the real client
    holds each phase to ``timeout_s`` on its own, so a miner slow at both (a dripped TLS handshake or DNS answer,
    then a dripped body) took twice the timeout, and then answers."""

    def __init__(self, timeout_s: float, body: bytes) -> None:
        self.timeout_s, self.body = timeout_s, body

    async def call(self, *args: object, **kwargs: object) -> Answer:
        await asyncio.sleep(0.9 * self.timeout_s)  # connecting
        await asyncio.sleep(0.9 * self.timeout_s)  # the answer
        return Answer(200, self.body, 1.8 * self.timeout_s, False)


def test_the_validator_waits_for_a_miner_no_longer_than_its_timeout_in_all() -> None:
    """Red team: the prompt commits only once every miner answered or timed out, and must land before the future's
    first block (20 blocks of lead); one miner at twice the timeout voided every prompt for everyone."""
    validator = PredictionValidator(key("prediction-validator"), 1, "http://127.0.0.1:9", timeout_s=0.2)
    spec = validator.source.draw(b"\x01" * 16, 100, 20, 12)
    client = SlowInBothPhases(validator.timeout_s, b"{}")
    received = asyncio.run(validator._ask_forecast(client, "1-2-x", 0, "gm1slow", {  # type: ignore[arg-type]
        "url": "http://127.0.0.1:9", "models": ["naive"]}, [spec], [np.arange(64.0)], []))
    validator.close()
    assert received.forecasts is None and received.note == "no answer within 0.2 s", received.note
