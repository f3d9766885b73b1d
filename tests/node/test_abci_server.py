"""The ABCI server on its own: proposals with an invalid transaction are rejected, proposals are built only from
well-formed transactions within the byte limit, every request type of v0.38 gets an answer, pipelined requests
on a socket are answered in order, and no query or transaction (nor an error in answering one) ends a connection
or gets the ``exception`` answer that stops CometBFT."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain.app import App
from gridmint.chain.bank import MsgSend
from gridmint.chain.credit import MsgSettle
from gridmint.chain.crypto import format_address
from gridmint.chain.store import Store
from gridmint.node.abci import messages
from gridmint.node.abci.proto import decode_oneof, decode_uvarint, encode, frame
from gridmint.node.abci.server import ANSWERS_PER_TURN, AbciApplication, AbciServer
from tests.support.chain import CHAIN_ID, MIN_TX_FEE, MINT, genesis, key, required_fee, signed

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


def test_a_proposal_past_the_blocks_work_budget_is_rejected(tmp_path: Path) -> None:
    """A proposer that ignores the work budget (PrepareProposal stops at it) gets its proposal rejected."""
    names = tuple(f"user{i}" for i in range(8))
    bank_section = {"params": {"min_tx_fee": MIN_TX_FEE, "max_block_units": 100_000},
                    "balances": [{"address": format_address(key(n).address), "amount": 1_000 * MINT} for n in names]}
    app = App(Store(tmp_path / "state.sqlite"))
    app.init_chain(genesis(accounts=(), bank=bank_section, tx={"max_tx_bytes": 16_384}))
    app.finalize_block([], 1, 1_767_225_600 * 10**9, b"")
    app.commit()
    application = AbciApplication(app)
    # Settlements of 72 entries (9 kB): 13,560 units each with the envelope, so seven fit in 100,000 and eight do not.
    message = MsgSettle(1, [[key("c").address, key("m").public_key, 1, 1, 1, bytes(64)]] * 72)
    txs = [signed(key(name), 1, message, fee=required_fee(app, message)) for name in names]
    request = {"hash": b"", "height": 2, "time": ONE_SECOND, "proposer_address": b""}
    assert application.handle("process_proposal", {**request, "txs": txs[:7]})["status"] == messages.ACCEPT
    assert application.handle("process_proposal", {**request, "txs": txs})["status"] == messages.REJECT


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
        "result": messages.OFFER_REJECT_FORMAT}
    assert application.handle("verify_vote_extension", {"hash": b"", "validator_address": b"", "height": 1,
                                                        "vote_extension": b""}) == {"status": messages.ACCEPT}


def _exchange(tmp_path: Path, requests: list[dict[str, Any]], chunk: int) -> list[tuple[str, dict[str, Any]]]:
    """Send ``requests`` over a unix socket, ``chunk`` bytes per write; the responses, as (case, fields), in the
    order they came."""
    server = AbciServer(App(Store(tmp_path / "state.sqlite")))

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        path = str(tmp_path / "app.sock")
        listener = await asyncio.start_unix_server(server.serve_connection, path=path)
        async with listener:
            reader, writer = await asyncio.open_unix_connection(path)
            wire = b"".join(frame(r["raw"] if "raw" in r else encode(r, messages.REQUESTS)) for r in requests)
            for offset in range(0, len(wire), chunk):
                writer.write(wire[offset:offset + chunk])
                await writer.drain()
            responses = await _receive(reader, len(requests))
            writer.close()
            return responses

    return asyncio.run(scenario())


async def _receive(reader: asyncio.StreamReader, count: int, timeout_s: float = 5) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` responses on a connection, as (case, fields)."""
    data, responses = b"", []
    while len(responses) < count:
        chunk = await asyncio.wait_for(reader.read(65_536), timeout_s)
        if not chunk:
            raise ConnectionError(f"the app closed the connection after {len(responses)} of {count} responses")
        data += chunk
        while data:
            length, start = decode_uvarint(data, 0)
            if len(data) < start + length:
                break
            responses.append(decode_oneof(data[start:start + length], messages.RESPONSES))
            data = data[start + length:]
    return responses


def test_pipelined_requests_are_answered_in_order_over_a_socket(tmp_path: Path) -> None:
    requests = [{"echo": {"message": "one"}}, {"info": {"version": "0.38.25"}}, {"echo": {"message": "two"}},
                {"flush": {}}]
    responses = _exchange(tmp_path, requests, 1 << 20)
    assert [case for case, _ in responses] == ["echo", "info", "echo", "flush"]
    assert responses[0][1]["message"] == "one" and responses[2][1]["message"] == "two"


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_a_long_pipeline_split_anywhere_is_answered_whole_and_in_order(tmp_path: Path, chunk: int) -> None:
    """More requests than the server answers per event-loop turn, arriving in one write or in 7-byte pieces
    (frames cut mid-length and mid-body)."""
    requests: list[dict[str, Any]] = [{"echo": {"message": f"m{i}"}} for i in range(3 * ANSWERS_PER_TURN + 5)]
    responses = _exchange(tmp_path, [*requests, {"flush": {}}], chunk)
    assert responses[:-1] == [("echo", {"message": f"m{i}"}) for i in range(len(requests))]
    assert responses[-1] == ("flush", {})


def _committed(tmp_path: Path) -> AbciApplication:
    application = _initialised(tmp_path)
    application.handle("finalize_block", {"txs": [], "hash": b"", "height": 1, "time": ONE_SECOND,
                                          "next_validators_hash": b"", "proposer_address": b"\x01" * 20})
    application.handle("commit", {})
    return application


@pytest.mark.parametrize("path", ["/subnets/99999", f"/market/order/{2**64}", f"/escrow/account/{10**30}",
                                  "/x" * 1000])
def test_a_hostile_query_is_answered_with_a_code(tmp_path: Path, path: str) -> None:
    answer = _committed(tmp_path).handle("query", {"path": path, "data": b"", "height": 0, "prove": False})
    assert answer["code"] != 0 and answer["codespace"] == "query" and answer["log"]


def _query(path: bytes) -> dict[str, Any]:
    """A Query request whose path holds raw bytes (CometBFT passes a URI's bytes through as they came)."""
    inner = b"\x12" + bytes([len(path)]) + path  # field 2 (path), length-delimited
    return {"raw": b"\x32" + bytes([len(inner)]) + inner}  # field 6 of Request: query


def test_errors_in_queries_and_checks_are_answered_with_codes_and_the_connection_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception that reaches the server, and a request that cannot be decoded, still get a response of their
    own kind with a code: an ``exception`` response would stop CometBFT, and so would a dropped connection."""
    def broken(self: App, *args: object, **kwargs: object) -> None:
        raise RecursionError("a bug")

    monkeypatch.setattr(App, "query", broken)
    monkeypatch.setattr(App, "check_tx", broken)
    requests: list[dict[str, Any]] = [
        {"query": {"path": "/bank/supply"}}, {"check_tx": {"tx": b"\x00"}}, _query(b"/bank/\xff\xfe"),
        {"echo": {"message": "still here"}}, {"flush": {}}]
    responses = _exchange(tmp_path, requests, 1 << 20)
    assert [case for case, _ in responses] == ["query", "check_tx", "query", "echo", "flush"]
    assert responses[0][1]["codespace"] == "app" and "RecursionError" in responses[0][1]["log"]
    assert responses[1][1]["codespace"] == "app" and responses[1][1]["code"] != 0
    assert responses[2][1]["codespace"] == "query" and "not UTF-8" in responses[2][1]["log"]
    assert responses[3][1]["message"] == "still here"


def test_a_query_whose_reader_fails_is_answered_with_a_code_and_the_connection_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The query thread's own read snapshot can fail outside the app (SQLite busy while a WAL is recovered, no file
    descriptor left for a reader): the query is still answered with a code and the connection goes on; a
    dropped query connection stops CometBFT."""
    def busy(self: Store) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Store, "read_snapshot", busy)
    requests: list[dict[str, Any]] = [{"query": {"path": "/bank/supply"}}, {"echo": {"message": "still here"}},
                                      {"flush": {}}]
    responses = _exchange(tmp_path, requests, 1 << 20)
    assert [case for case, _ in responses] == ["query", "echo", "flush"]
    assert responses[0][1]["code"] != 0 and "OperationalError" in responses[0][1]["log"]
    assert responses[1][1]["message"] == "still here"


def test_a_proposal_that_makes_decoding_raise_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    application = _initialised(tmp_path)

    def broken(self: App, raw: bytes) -> None:
        raise IndexError("a bug")

    monkeypatch.setattr(App, "decode_verified", broken)
    request = {"txs": [b"anything"], "hash": b"", "height": 1, "time": ONE_SECOND, "proposer_address": b""}
    assert application.handle("process_proposal", request)["status"] == messages.REJECT


def test_a_query_that_takes_long_holds_back_no_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone can send queries through CometBFT's RPC: one that takes long (held here until the block is done)
    runs off the event loop, so the consensus connection's finalize_block and commit are answered meanwhile, and
    the query then answers from the committed state it began on, in order with its own connection's answers."""
    application = _committed(tmp_path)
    server = AbciServer(application.app)
    started, release = threading.Event(), threading.Event()
    real_query = App.query

    def slow_query(self: App, *args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(30)
        return real_query(self, *args, **kwargs)

    monkeypatch.setattr(App, "query", slow_query)

    async def send(writer: asyncio.StreamWriter, *requests: dict[str, Any]) -> None:
        writer.write(b"".join(frame(encode(r, messages.REQUESTS)) for r in requests))
        await writer.drain()

    async def scenario() -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
        path = str(tmp_path / "app.sock")
        async with await asyncio.start_unix_server(server.serve_connection, path=path):
            query_reader, query_writer = await asyncio.open_unix_connection(path)
            block_reader, block_writer = await asyncio.open_unix_connection(path)
            await send(query_writer, {"query": {"path": "/bank/supply"}}, {"echo": {"message": "after"}},
                       {"flush": {}})
            await asyncio.to_thread(started.wait, 30)
            await send(block_writer, {"finalize_block": {"txs": [], "hash": b"", "height": 2, "time": ONE_SECOND,
                                                         "proposer_address": b"\x01" * 20}},
                       {"commit": {}}, {"flush": {}})
            block_answers = await _receive(block_reader, 3, 30)  # while the query is still held
            release.set()
            query_answers = await _receive(query_reader, 3, 30)
            for writer in (query_writer, block_writer):
                writer.close()
            return block_answers, query_answers

    try:
        block_answers, query_answers = asyncio.run(scenario())
    finally:
        release.set()
        server.close()
    assert [case for case, _ in block_answers] == ["finalize_block", "commit", "flush"]
    assert application.app.store.height == 2
    assert [case for case, _ in query_answers] == ["query", "echo", "flush"]
    assert query_answers[0][1]["code"] == 0 and query_answers[0][1]["height"] == 1  # the height it began on
    assert query_answers[1][1]["message"] == "after"
