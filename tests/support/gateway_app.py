"""A gateway app's surroundings for tests that serve it in this process: its own database (API keys, one issued to
``key("consumer")``, and the ledger), a stand-in for the chain's credit line, and a miner that answers unsigned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gridmint.chain.crypto import format_address
from gridmint.gateway.keys import ApiKeys, key_message
from gridmint.gateway.ledger import Ledger, open_db
from tests.support.chain import key

ONE = 1 << 30  # the metagraph's fixed-point 1.0
FEE_BPS = 100  # the stand-in line's gateway fee


class LineStandIn:
    """The chain as CreditBook reads it: one credit line, whatever the consumer, on terms a test sets."""

    def __init__(self) -> None:
        self.line: dict[str, Any] = {"id": 3, "balance": 10**9, "spent": 0, "opened": 1, "expires": 10**6,
                                     "fee_bps": FEE_BPS, "max_price_per_1k": 10**6, "cap": 0, "cap_period": 0,
                                     "period_start": 1, "period_spent": 0, "closing_at": 0}

    def query(self, path: str) -> dict[str, Any]:
        return dict(self.line)

    def height(self) -> int:
        return 10


async def unsigned_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 with a plausible body and no signature."""
    if scope["type"] != "http":
        return
    body = orjson.dumps({"choices": [{"message": {"content": "trust me"}}], "usage": {"completion_tokens": 999}})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class GatewayBooks:
    """The gateway's database as `gridmint gateway run` keeps it, for the gateway ``key("gateway")``."""

    address: str
    keys: ApiKeys
    ledger: Ledger

    def issue_api_key(self, name: str = "consumer") -> str:
        """A key for ``key(name)``'s account, issued as /v1/auth does: against its signature of a fresh
        challenge."""
        account = key(name)
        address = format_address(account.address)
        proof = account.sign(key_message(self.address, address, self.keys.challenge(address)))
        return self.keys.issue(address, account.public_key.hex(), proof.hex())


def open_books(folder: Path) -> GatewayBooks:
    db = open_db(str(folder / "gateway.db"))
    address = format_address(key("gateway").address)
    return GatewayBooks(address, ApiKeys(db, address), Ledger(db))
