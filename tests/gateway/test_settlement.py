"""Settlement against a stand-in for the chain: a batch never asks more of a consumer than its credit line holds,
so one consumer that spent past its line does not hold back every miner's pay."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain.credit import NO_LINE, MsgSettle, compute_fee
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.gateway.ledger import Ledger, open_db
from gridmint.gateway.settlement import settle
from tests.helpers import key

GATEWAY_KEY = key("gateway")
GATEWAY = format_address(GATEWAY_KEY.address)
ALICE, BOB, CAROL = (format_address(key(name).address) for name in ("alice", "bob", "carol"))
MINER = format_address(key("m1").address)
FEE_BPS = 100


@dataclass
class Executed:
    height: int


class ChainStandIn:
    """Lines by consumer (CAROL has none); records what is sent and refuses, as the chain does, an entry beyond
    its consumer's line."""

    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines
        self.sent: list[MsgSettle] = []

    def query(self, path: str) -> Any:
        if path == "/credit/gateways":
            return [{"gateway": GATEWAY, "last_batch": len(self.sent)}]
        consumer = path.split("/")[3]
        if consumer not in self.lines:
            raise ChainError(NO_LINE, f"{consumer} has no credit line with {GATEWAY}")
        return {"balance": self.lines[consumer], "expires": 10**6}

    def execute(self, signer: PrivateKey, messages: list[MsgSettle]) -> Executed:
        [message] = messages
        for consumer, _, grains, _ in message.entries:
            charged = grains + compute_fee(grains, FEE_BPS)
            assert charged <= self.lines[format_address(consumer)], "the chain would refuse this batch"
            self.lines[format_address(consumer)] -= charged
        self.sent.append(message)
        return Executed(height=7)


def test_usage_past_a_line_stays_owed_and_the_rest_is_settled(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger(open_db(str(tmp_path / "gateway.db")), FEE_BPS)
    chain = ChainStandIn({ALICE: 1_000_000, BOB: 150})
    ledger.record(ALICE, MINER, 5_000)
    for _ in range(3):
        ledger.record(BOB, MINER, 60)  # 180 grains and fees against a line of 150
    ledger.record(CAROL, MINER, 10)  # no line at all

    with caplog.at_level(logging.WARNING, logger="gridmint.gateway"):
        batch = asyncio.run(settle(chain, GATEWAY_KEY, ledger))  # type: ignore[arg-type]

    assert batch is not None and [format_address(c) for c, _, _, _ in chain.sent[0].entries] == [ALICE, BOB]
    assert batch.charges == {ALICE: 5_050, BOB: 120 + compute_fee(120, FEE_BPS)}
    assert chain.lines == {ALICE: 1_000_000 - 5_050, BOB: 150 - 121}
    assert ledger.owed(ALICE) == 0 and ledger.owed(BOB) == 60 and ledger.owed(CAROL) == 10
    assert f"{BOB} has used" in caplog.text and f"{CAROL} has used" in caplog.text
    assert asyncio.run(settle(chain, GATEWAY_KEY, ledger)) is None  # nothing more fits: nothing is sent
    assert len(chain.sent) == 1

    chain.lines[BOB] += 1_000  # a top-up: the usage that waited goes into the next batch
    after_top_up = asyncio.run(settle(chain, GATEWAY_KEY, ledger))  # type: ignore[arg-type]
    assert after_top_up is not None and after_top_up.charges == {BOB: 60}
    assert ledger.owed(BOB) == 0 and ledger.owed(CAROL) == 10
