"""Transaction and block results as the JSON that CometBFT 0.38's RPC gives for them, encoded to text once.

The devnode keeps each block's results in its block log in this form (``node/blockstore``), so ``block_results``
and ``tx`` answer by splicing stored text rather than decoding a record and encoding it again: for a block of
2,424 transfers that was ~37 ms of a query worker's time, holding the interpreter the block loop needs, on every
read. The text is exactly what ``json.dumps(..., separators=(",", ":"))`` makes of the same objects (ASCII, with
json's escapes), so no client can tell how it was made; the tests hold it to that.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _string

from gridmint.chain.app import BlockResult, TxResult
from gridmint.chain.module import Event, ValidatorUpdate


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def encode_event(event: Event) -> str:
    attributes = ",".join(['{"key":' + _string(key) + ',"value":' + _string(value) + ',"index":true}'
                           for key, value in event.attributes])
    return '{"type":' + _string(event.type) + ',"attributes":[' + attributes + "]}"


def encode_events(events: Sequence[Event]) -> str:
    return "[" + ",".join([encode_event(event) for event in events]) + "]"


def encode_tx_result(result: TxResult) -> str:
    """ExecTxResult (or ResponseCheckTx) as CometBFT writes it: gas is not metered here, so it reads 0."""
    return ('{"code":' + str(result.code) + ',"data":"' + _b64(result.data) + '","log":' + _string(result.log)
            + ',"info":"","gas_wanted":"0","gas_used":"0","events":' + encode_events(result.events)
            + ',"codespace":' + _string(result.codespace) + "}")


def encode_validator_updates(updates: Sequence[ValidatorUpdate]) -> str:
    return "[" + ",".join(['{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"' + _b64(update.pub_key)
                           + '"},"power":"' + str(update.power) + '"}' for update in updates]) + "]"


@dataclass(frozen=True)
class EncodedResults:
    """A block's results, each part encoded once as CometBFT's JSON: the block log keeps them assembled as
    ``block_results`` answers, and the websocket's Tx and NewBlock events splice the same parts."""

    tx_results: list[str]  # each transaction's ExecTxResult, in block order
    events: str  # the block's own (end-block) events
    validator_updates: str
    app_hash: str  # base64

    def block_results(self) -> tuple[str, list[tuple[int, int]]]:
        """``block_results``' answer less its height, and where each transaction's result lies in it, as (offset,
        length): ASCII, so characters are bytes, and ``tx`` can cut out one result without reading the rest."""
        head = '{"txs_results":['
        spans: list[tuple[int, int]] = []
        offset = len(head)
        for text in self.tx_results:
            spans.append((offset, len(text)))
            offset += len(text) + 1  # and its comma
        text = (head + ",".join(self.tx_results) + '],"finalize_block_events":' + self.events
                + ',"validator_updates":' + self.validator_updates + ',"consensus_param_updates":null,"app_hash":"'
                + self.app_hash + '"}')
        return text, spans


def encode_block_results(result: BlockResult) -> EncodedResults:
    return EncodedResults([encode_tx_result(tx_result) for tx_result in result.tx_results],
                          encode_events(result.events), encode_validator_updates(result.validator_updates),
                          _b64(result.app_hash))
