"""The ABCI server on its own: proposals with an invalid transaction are rejected, proposals are built only from
well-formed transactions within the byte limit, every request type of v0.38 gets an answer, and pipelined requests
on a socket are answered in order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gridmint.chain.app import App
from gridmint.chain.bank import MsgSend
from gridmint.chain.store import Store
from gridmint.node.abci import messages
from gridmint.node.abci.proto import decode, decode_uvarint, encode, frame
from gridmint.node.abci.server import AbciApplication, AbciServer
from tests.helpers import CHAIN_ID, genesis, key, signed

ONE_SECOND = {"seconds": 1_767_225_600, "nanos": 0}


def _initialised(tmp_path: Path) -> AbciApplication:
    application = AbciApplication(App(Store(tmp_path / "state.sqlite")))
    document = genesis().document
    answer = application.handle("init_chain", {
        "time": ONE_SECOND, "chain_id": CHAIN_ID, "validators": [], "initial_height": 1,
        "app_state_bytes": json.dumps(document["app_state"]).encode()})
    assert len(answer["validators"]) == 1 and len(answer["app_hash"]) == 32
    return application


def test_a_proposal_with_an_invalid_transaction_is_rejected(tmp_path: Path) -> None:
    application = _initialised(tmp_path)
    good = signed(key("alice"), 1, MsgSend(key("bob").address, 5))
    tampered = bytearray(good)
    tampered[-3] ^= 1
    request = {"txs": [good], "hash": b"", "height": 1, "time": ONE_SECOND, "proposer_address": b""}
    assert application.handle("process_proposal", request)["status"] == messages.ACCEPT
    for bad in (bytes(tampered), b"\x00garbage"):
        assert application.handle("process_proposal", {**request, "txs": [good, bad]})["status"] == messages.REJECT
    kept = application.handle("prepare_proposal", {"max_tx_bytes": len(good) + 10, "txs": [b"junk", good, good],
                                                   "height": 1, "time": ONE_SECOND, "proposer_address": b""})
    assert kept["txs"] == [good]  # junk dropped, the second copy over the byte limit


def test_finalize_and_commit_answer_one_result_per_transaction(tmp_path: Path) -> None:
    application = _initialised(tmp_path)
    txs = [signed(key("alice"), 1, MsgSend(key("bob").address, 5)), b"\x00not a tx"]
    answer = application.handle("finalize_block", {"txs": txs, "hash": b"", "height": 1, "time": ONE_SECOND,
                                                   "next_validators_hash": b"", "proposer_address": b"\x01" * 20})
    assert answer["tx_results"][0]["code"] == 0 and answer["tx_results"][1]["code"] != 0
    assert application.handle("commit", {}) == {"retain_height": 0}
    assert application.handle("info", {"version": "0.38.25", "block_version": 11, "p2p_version": 8,
                                       "abci_version": "2.0.0"})["last_block_height"] == 1
    assert application.handle("offer_snapshot", {"snapshot": None, "app_hash": b""}) == {
        "result": messages.SNAPSHOT_REJECT}
    assert application.handle("verify_vote_extension", {"hash": b"", "validator_address": b"", "height": 1,
                                                        "vote_extension": b""}) == {"status": messages.ACCEPT}


def test_pipelined_requests_are_answered_in_order_over_a_socket(tmp_path: Path) -> None:
    server = AbciServer(App(Store(tmp_path / "state.sqlite")))

    async def scenario() -> list[str]:
        path = str(tmp_path / "app.sock")
        listener = await asyncio.start_unix_server(server.serve_connection, path=path)
        async with listener:
            reader, writer = await asyncio.open_unix_connection(path)
            requests = [{"echo": {"message": "one"}}, {"info": {"version": "0.38.25"}}, {"echo": {"message": "two"}},
                        {"flush": {}}]
            writer.write(b"".join(frame(encode(r, messages.REQUESTS)) for r in requests))
            await writer.drain()
            data, kinds = b"", []
            while len(kinds) < len(requests):
                data += await asyncio.wait_for(reader.read(65_536), 5)
                while data:
                    length, start = decode_uvarint(data, 0)
                    if len(data) < start + length:
                        break
                    response = decode(data[start:start + length], messages.RESPONSES)
                    kinds.append(messages.kind_of(response) + ":" + str(response.get("echo") or ""))
                    data = data[start + length:]
            writer.close()
            return kinds

    kinds = asyncio.run(scenario())
    assert [k.split(":")[0] for k in kinds] == ["echo", "info", "echo", "flush"]
    assert "one" in kinds[0] and "two" in kinds[2]
