"""A ChainClient's ``execute`` and ``query`` answered by an app in this process (a ``Driver``), so that client code
that reads what a transaction created can be tested without a node: each ``execute`` is a block of its own.

A real node also returns the transaction's events; this one returns none unless asked, so that a test proves the
code under test reads ids from the result's data (``TxOutcome.created``), not from event strings."""

from __future__ import annotations

import json
from typing import Any

from gridmint.chain import codec
from gridmint.chain.crypto import PrivateKey
from gridmint.chain.state import CommittedView
from gridmint.chain.tx import Msg, tx_hash
from gridmint.client.chain_client import TxOutcome, raise_for_code
from gridmint.node.results_json import encode_events
from tests.support.chain import FEE, Driver, required_fee, signed


class InProcessClient:
    def __init__(self, net: Driver, with_events: bool = False) -> None:
        self.net, self.with_events = net, with_events

    def __enter__(self) -> InProcessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, key: PrivateKey, messages: list[Msg], memo: str = "") -> TxOutcome:
        nonce = CommittedView(self.net.app.store).get_int(b"tx/nonce/" + key.address) + 1
        raw = signed(key, nonce, *messages, fee=max(FEE, required_fee(self.net.app, *messages, memo=memo)), memo=memo)
        (result,) = self.net.block(raw)
        raise_for_code(result.code, result.codespace, result.log)
        return TxOutcome(tx_hash(raw).hex().upper(), self.net.height, result.code, result.codespace, result.log,
                         json.loads(encode_events(result.events)) if self.with_events else [], result.data)

    def query(self, path: str, data: bytes = b"", height: int = 0) -> Any:
        answer = self.net.app.query(path, data, height)
        raise_for_code(answer.code, answer.codespace, answer.log)
        return codec.decode(answer.value)
