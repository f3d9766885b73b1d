"""Results encoded to text once (node/results_json) are exactly the JSON of CometBFT's shapes, escapes included,
and each transaction's span cuts out its own result."""

from __future__ import annotations

import base64
import json
from typing import Any

from gridmint.chain.app import BlockResult, TxResult
from gridmint.chain.module import Event, ValidatorUpdate
from gridmint.node.results_json import encode_block_results, encode_events, encode_tx_result

AWKWARD = 'quote " backslash \\ newline \n tab \t nul \x00 é 😀 </script>'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def events_shape(events: list[Event]) -> list[dict[str, Any]]:
    return [{"type": e.type, "attributes": [{"key": k, "value": v, "index": True} for k, v in e.attributes]}
            for e in events]


def tx_result_shape(result: TxResult) -> dict[str, Any]:
    """ExecTxResult as CometBFT 0.38's RPC writes it, written out here independently of the encoder."""
    return {"code": result.code, "data": b64(result.data), "log": result.log, "info": "", "gas_wanted": "0",
            "gas_used": "0", "events": events_shape(result.events), "codespace": result.codespace}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


RESULTS = [
    TxResult(events=[Event("fee", (("payer", "gm1abc"), ("amount", "1000"))),
                     Event("transfer", (("sender", "gm1abc"), ("recipient", "gm1def"), ("amount", "1")))]),
    TxResult(code=7, codespace="bank", log=AWKWARD, events=[Event("fee", (("payer", AWKWARD),))]),
    TxResult(data=b"\x00\xff" * 9, events=[Event(AWKWARD, ((AWKWARD, AWKWARD),))]),
    TxResult(),
]


def test_a_transaction_result_is_the_json_of_its_cometbft_shape() -> None:
    for result in RESULTS:
        assert encode_tx_result(result) == dumps(tx_result_shape(result))
    assert encode_events([]) == "[]"


def test_block_results_are_the_json_of_their_shape_and_each_span_is_its_transaction() -> None:
    block = BlockResult(RESULTS, [ValidatorUpdate(b"\x01" * 32, 10), ValidatorUpdate(b"\x02" * 32, 0)],
                        b"\xab" * 32, [Event("epoch", (("netuid", "1"), ("note", AWKWARD)))])
    text, spans = encode_block_results(block).block_results()
    assert text == dumps({
        "txs_results": [tx_result_shape(r) for r in RESULTS],
        "finalize_block_events": events_shape(block.events),
        "validator_updates": [{"pub_key": {"type": "tendermint/PubKeyEd25519", "value": b64(u.pub_key)},
                               "power": str(u.power)} for u in block.validator_updates],
        "consensus_param_updates": None, "app_hash": b64(block.app_hash)})
    assert text.isascii()  # so the spans, counted in characters, are byte offsets in the log too
    assert [text[at:at + length] for at, length in spans] == [encode_tx_result(r) for r in RESULTS]
    empty_text, empty_spans = encode_block_results(BlockResult([], [], b"", [])).block_results()
    assert json.loads(empty_text)["txs_results"] == [] and empty_spans == []
