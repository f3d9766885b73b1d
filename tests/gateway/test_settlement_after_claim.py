"""A miner's own claim must not stop the gateway's settlements: once a miner claims on chain a receipt the gateway
acknowledged (its right when the gateway is slow), the gateway's next receipt for that (line, miner), if it adds
nothing, is one the chain already paid. Sent in a batch, it would have the whole batch refused (``receipt_stale``),
period after period, with every other miner's entries in it: no miner of that gateway would be paid again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.client.errors import TX_TIMEOUT
from gridmint.gateway import settlement
from gridmint.gateway.credit import read_line
from gridmint.inference.miner import claims
from tests.support.chain import key
from tests.support.settlement_market import Market, open_market, serve_requests, settle_once

PRICE = 1_000


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    with open_market(tmp_path, {"m1": PRICE, "m2": PRICE}) as opened:
        yield opened


def test_a_miners_claim_does_not_wedge_the_gateways_settlements(market: Market,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    chain, consumer = market.chain, format_address(key("consumer").address)
    gateway = format_address(market.gateway_key.address)
    line = read_line(chain, consumer, gateway)
    assert line is not None
    m1_cost = serve_requests(market, "m1", 2)

    # The gateway asks m1 to sign (acknowledging the receipt), but its batch does not land in time.
    sent = settlement._send_batch

    def lost(*args: Any) -> int:
        raise TX_TIMEOUT("no answer from the node")

    monkeypatch.setattr(settlement, "_send_batch", lost)
    with pytest.raises(ChainError):
        settle_once(market)
    monkeypatch.setattr(settlement, "_send_batch", sent)

    # m1's receipt, which the gateway acknowledged, is claimed (anyone may send it; its coldkey is paid exactly).
    m1 = market.miners["m1"]
    m1_before = chain.balance(format_address(key("m1").address))
    reviewed = claims.claim(chain, key("owner"), key("m1").public_key, claims.review(chain, m1.book))
    assert [r.state for r in reviewed] == [claims.CLAIMED]
    assert chain.balance(format_address(key("m1").address)) == m1_before + m1_cost

    # m2 serves meanwhile; the gateway must go on settling it, whatever m1 did.
    m2_cost = serve_requests(market, "m2", 3)
    m2_before = chain.balance(format_address(key("m2").address))
    for _ in range(3):
        with contextlib.suppress(ChainError):  # the copy of the lost batch is refused: m1 was paid by its claim
            settle_once(market)
    assert chain.balance(format_address(key("m2").address)) == m2_before + m2_cost
    assert chain.balance(format_address(key("m1").address)) == m1_before + m1_cost  # never paid twice
    assert market.ledger.unbatched() == []  # nothing left owed: m1's usage was paid by its claim
    assert market.ledger.owed(consumer) == 0
    states = [u["state"] for u in httpx.get(f"{market.url}/v1/usage",
                                            headers={"authorization": f"Bearer {market.api_key}"}).json()["usage"]]
    assert states == ["settled"] * 5
