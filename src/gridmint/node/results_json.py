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
    """A block's results in ``block_results``'s shape without its height, and where in that text (ASCII: characters
    are bytes) each transaction's result lies, so that ``tx`` can cut out one without reading the rest."""

    text: str
    tx_spans: list[tuple[int, int]]  # (offset, length) of each transaction's result, in block order


def encode_block_results(result: BlockResult) -> EncodedResults:
    head = '{"txs_results":['
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    offset = len(head)
    for tx_result in result.tx_results:
        text = encode_tx_result(tx_result)
        spans.append((offset, len(text)))
        parts.append(text)
        offset += len(text) + 1  # and its comma
    text = (head + ",".join(parts) + '],"finalize_block_events":' + encode_events(result.events)
            + ',"validator_updates":' + encode_validator_updates(result.validator_updates)
            + ',"consensus_param_updates":null,"app_hash":"' + _b64(result.app_hash) + '"}')
    return EncodedResults(text, spans)
