"""Attacks on inference payments, each performed against a real devnode, real gateway processes and a real miner
process (echo backend: this is about money, not the model). After each, the consumer's line, the miner's coldkey
and the gateway hold exactly what the honest usage moved, to the grain.

The gateway's operator is the attacker in the first test: it holds the gateway's key and sends its own
``credit/settle`` transactions (with its gateway process stopped, so the two do not race for the key's nonces)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridmint.chain.credit import MsgRegisterGateway, MsgSettle, compute_fee
from gridmint.chain.crypto import PrivateKey, parse_address
from gridmint.chain.errors import ChainError
from gridmint.chain.receipts import Receipt, sign_receipt
from gridmint.chain.subnets import MsgAnnounceEndpoint
from gridmint.chain.units import GRAINS_PER_MINT
from gridmint.cli.main import cli
from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from gridmint.gateway import metering
from gridmint.gateway.keys import gateway_at, request_api_key
from gridmint.gateway.ledger import charge
from gridmint.inference import wire
from tests.support.gateway_network import ledger_rows, start_gateway, start_miner, wait_for_models, wait_until_settled
from tests.support.live_subnet import fees_paid, live_subnet
from tests.support.processes import LoggedProcess
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

FEE_BPS = 100
PRICE = "0.001"  # the miner's, MINT per 1k tokens
MAX_PRICE = 2_000_000  # the line's, grains per 1k tokens (0.002 MINT)
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "pay me for this"}], "max_tokens": 8}
PASSWORD = "pw"


def _chat(gateway: LoggedProcess, api_key: str, body: dict[str, Any] = CHAT) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {api_key}"})


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "gateway-data" / "gateway.db")


def _metered(tmp_path: Path) -> list[tuple[str, int, int]]:
    """(miner, grains, batch) of every metered row."""
    return [(miner, grains, batch or 0) for _, miner, grains, batch, _ in ledger_rows(tmp_path)]


def _charged(rows: list[tuple[str, int, int]], fee_bps: int) -> tuple[int, int]:
    """(grains to miners, fees) the chain takes for these rows: one entry per (batch, miner), fee rounded down."""
    entries: dict[tuple[int, str], int] = defaultdict(int)
    for miner, grains, batch in rows:
        entries[(batch, miner)] += grains
    return sum(entries.values()), sum(compute_fee(grains, fee_bps) for grains in entries.values())


def _refused(client: ChainClient, key: PrivateKey, messages: list[Any], name: str) -> None:
    with pytest.raises(ChainError) as caught:
        client.execute(key, messages)
    assert caught.value.kind.name == name, caught.value


def _receipt(client: ChainClient, line: dict[str, Any], gateway: bytes, consumer: bytes, miner: PrivateKey,
             tokens: int, grains: int, requests: int) -> Receipt:
    return Receipt(client.chain_id(), int(line["id"]), gateway, consumer, miner.address, tokens, grains, requests)


def _entry(receipt: Receipt, signer: PrivateKey, miner_key: bytes) -> list[Any]:
    return [receipt.consumer, miner_key, receipt.tokens, receipt.grains, receipt.requests,
            sign_receipt(signer, receipt)]


def test_a_gateway_cannot_pay_itself_settle_unsigned_usage_or_change_the_terms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch, names=("owner", "val", "m1"), tempo=50_000, permit=False,
                     others=("gw", "consumer", "late"), credit={"params": {"close_notice": 100}}) as live:
        live.run("subnet", "register", "1", "--wallet", "gw")  # the operator's own miner hotkey
        wallets = {name: open_wallet(name, live.wallets) for name in ("gw", "m1", "consumer", "late")}
        gw_key, m1_hot = wallets["gw"].coldkey(PASSWORD), wallets["m1"].hotkey("default")
        gw_hot = wallets["gw"].hotkey("default")
        gw, consumer = wallets["gw"].address, wallets["consumer"].address
        gateway = start_gateway(tmp_path, "gw", "--fee-bps", str(FEE_BPS), miners=("m1",))
        miner = start_miner(tmp_path, "m1", 1, "echo", PRICE)
        try:
            wait_for_models(gateway, "echo")
            live.run("credit", "open", gateway.url, "5", "--max-price", f"{MAX_PRICE}grain", "--wallet", "consumer")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            own: list[dict[str, Any]] = []
            for _ in range(3):
                answer = _chat(gateway, api_key)
                assert answer.status_code == 200, answer.text
                own.append({"request": answer.headers["x-gridmint-request"],
                            "cost": int(answer.headers["x-gridmint-cost"])})
            wait_until_settled(tmp_path, 3, gateway)
            gateway.stop()  # settles what is left and exits; from here on the operator acts by hand

            with ChainClient(live.node.url) as client:
                start = client.height()
                line = client.query(f"/credit/line/{consumer}/{gw}")
                [paid] = client.query(f"/credit/paid/{line['id']}")
                coldkey_before = client.balance(wallets["m1"].address)
                gw_before = client.balance(gw)
                batch = 10**9  # above any batch id the gateway used: each refusal below is the attack's own
                consumer_address = parse_address(consumer)
                gateway_address = parse_address(gw)

                # 1. To its own hotkey, signed by that hotkey: self-dealing.
                own_receipt = _receipt(client, line, gateway_address, consumer_address, gw_hot, 100, 1_000, 1)
                _refused(client, gw_key, [MsgSettle(batch, [_entry(own_receipt, gw_hot, gw_hot.public_key)])],
                         "self_dealing")
                # 2. No receipt: the miner's name and a signature of zeros.
                newer = _receipt(client, line, gateway_address, consumer_address, m1_hot, paid["tokens"] + 100,
                                 paid["grains"] + 100_000, paid["requests"] + 1)
                unsigned = [*_entry(newer, m1_hot, m1_hot.public_key)[:5], bytes(64)]
                _refused(client, gw_key, [MsgSettle(batch, [unsigned])], "bad_receipt")
                # 3. Forged: the gateway signs in the miner's name.
                _refused(client, gw_key, [MsgSettle(batch, [_entry(newer, gw_key, m1_hot.public_key)])],
                         "bad_receipt")
                # 4. Replayed: the miner's own last receipt, which the gateway holds, sent again.
                with _db(tmp_path) as db:
                    held = db.execute("SELECT tokens, grains, requests, miner_key, signature FROM held_receipts "
                                      "WHERE line = ?", (int(line["id"]),)).fetchone()
                replay = [consumer_address, bytes.fromhex(held[3]), int(held[0]), int(held[1]), int(held[2]),
                          bytes.fromhex(held[4])]
                assert replay[2:5] == [paid["tokens"], paid["grains"], paid["requests"]]
                _refused(client, gw_key, [MsgSettle(batch, [replay])], "receipt_stale")
                # 5. Above the line's price, even with the miner's real signature (a colluding miner): the chain
                #    bounds what a line has paid a miner, in all, by its tokens at the line's maximum price.
                tokens, requests = paid["tokens"] + 10, paid["requests"] + 1
                dear = _receipt(client, line, gateway_address, consumer_address, m1_hot, tokens,
                                (tokens * MAX_PRICE + 999 * requests) // 1000 + 1, requests)
                _refused(client, gw_key, [MsgSettle(batch, [_entry(dear, m1_hot, m1_hot.public_key)])],
                         "above_max_price")

                # Nothing moved: the line, what it paid, the miner's coldkey; the gateway only lost its fees.
                now = client.height()
                assert client.query(f"/credit/line/{consumer}/{gw}") | {"reclaimable_from": 0} == \
                    line | {"reclaimable_from": 0}
                assert client.query(f"/credit/paid/{line['id']}") == [paid]
                assert client.balance(wallets["m1"].address) == coldkey_before
                assert client.balance(gw) == gw_before - fees_paid(client, gw, start, now)

            # 6. The fee raised after the line opened: the operator restarts at 100%. The line keeps its 1%; a
            #    consumer who accepts at most 1% cannot be caught by the new fee.
            metered_before = _metered(tmp_path)
            gateway = start_gateway(tmp_path, "gw", "--fee-bps", "10000", miners=("m1",))
            wait_for_models(gateway, "echo")
            with ChainClient(live.node.url) as client:
                before, line_before = client.height(), client.query(f"/credit/line/{consumer}/{gw}")
                gw_before, coldkey_before = client.balance(gw), client.balance(wallets["m1"].address)
            late = live.runner.invoke(cli, [
                "credit", "open", gateway.url, "1", "--max-fee-bps", str(FEE_BPS), "--wallet", "late"])
            assert late.exit_code != 0 and "fee_above_limit" in late.output, late.output
            for _ in range(2):
                answer = _chat(gateway, api_key)
                assert answer.status_code == 200, answer.text
                own.append({"request": answer.headers["x-gridmint-request"],
                            "cost": int(answer.headers["x-gridmint-cost"])})
            wait_until_settled(tmp_path, 5, gateway)  # it stays up, idle (nothing is owed), for the audit
            new_rows = [row for row in _metered(tmp_path) if row not in metered_before]
            to_miner, fees = _charged(new_rows, FEE_BPS)
            with ChainClient(live.node.url) as client:
                now = client.height()
                line_after = client.query(f"/credit/line/{consumer}/{gw}")
                assert line_after["fee_bps"] == FEE_BPS
                assert line_after["spent"] - line_before["spent"] == to_miner + fees > 0
                assert line_after["balance"] == line_before["balance"] - to_miner - fees
                assert client.balance(wallets["m1"].address) - coldkey_before == to_miner
                assert client.balance(gw) - gw_before == fees - fees_paid(client, gw, before, now)

            # 7. The consumer's audit agrees with everything so far, its own records included ...
            records = tmp_path / "own.jsonl"
            records.write_text("".join(json.dumps(entry) + "\n" for entry in own))
            clean = live.run("credit", "audit", gw, "--wallet", "consumer", "--api-key", api_key,
                             "--records", str(records))
            assert clean["clean"] and clean["records"] == 5, clean
            # ... until a settlement entry is altered: the operator and the miner sign 40 more tokens than were
            # served. It is within the line's terms, so the chain pays it; the audit names the miner.
            with ChainClient(live.node.url) as client:
                [paid] = client.query(f"/credit/paid/{line['id']}")
                altered = _receipt(client, line, gateway_address, consumer_address, m1_hot,
                                   paid["tokens"] + 40, paid["grains"] + 40 * 1_000, paid["requests"] + 1)
                client.execute(gw_key, [MsgSettle(batch, [_entry(altered, m1_hot, m1_hot.public_key)])])
            found = live.runner.invoke(cli, [
                "--json", "credit", "audit", gw, "--wallet", "consumer", "--api-key", api_key])
            assert found.exit_code == 1, found.output
            report = json.loads(found.output)
            assert [d["subject"] for d in report["differences"]] == [wallets["m1"].hotkey_address("default")]
            assert str(paid["grains"] + 40_000) in report["differences"][0]["what"]

            # 8. The consumer leaves early: after the notice it gets back exactly what was not settled.
            with ChainClient(live.node.url) as client:
                held = client.query(f"/credit/line/{consumer}/{gw}")["balance"]
                before = client.height()
                balance_before = client.balance(consumer)
            closing = live.run("credit", "close", gw, "--wallet", "consumer")
            assert any(event["type"] == "credit_closing" for event in closing["events"])
            with pytest.raises(AssertionError, match="not_expired"):
                live.run("credit", "reclaim", gw, "--wallet", "consumer")
            with ChainClient(live.node.url) as client:
                free_at = client.query(f"/credit/line/{consumer}/{gw}")["reclaimable_from"]
                wait_for(lambda: client.height() >= free_at, "the end of the close notice", timeout_s=60)
            live.run("credit", "reclaim", gw, "--wallet", "consumer")
            with ChainClient(live.node.url) as client:
                now = client.height()
                assert client.balance(consumer) - balance_before == held - fees_paid(client, consumer, before, now)
        finally:
            for process in (miner, gateway):
                process.stop()


def test_prices_are_bounded_and_fifty_concurrent_requests_cannot_overspend_a_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch, names=("owner", "val", "m1"), tempo=50_000, permit=False,
                     others=("gw", "consumer", "brief")) as live:
        m1 = open_wallet("m1", live.wallets)
        m1_hot = m1.hotkey("default")
        gw, consumer = open_wallet("gw", live.wallets).address, open_wallet("consumer", live.wallets).address
        gateway = start_gateway(tmp_path, "gw", "--fee-bps", str(FEE_BPS), "--rate", "1000", "--burst", "1000",
                                miners=("m1",))
        miner = start_miner(tmp_path, "m1", 1, "echo", PRICE, "--max-concurrency", "64")
        try:
            wait_for_models(gateway, "echo")
            # A miner re-pricing to 10^18 or 2^64 - 1 per 1k tokens: refused, its endpoint as it was.
            with ChainClient(live.node.url) as client:
                [endpoint] = [e for e in live.metagraph()["uids"] if e["hotkey"] == m1.hotkey_address("default")]
                for price in (10**18, 2**64 - 1):
                    _refused(client, m1_hot, [MsgAnnounceEndpoint(1, "http://127.0.0.1:1", ["echo"], price, 1)],
                             "price_above_limit")
            assert [e for e in live.metagraph()["uids"] if e["hotkey"] == m1.hotkey_address("default")] == [endpoint]

            # A line that holds exactly one request's worst case (prompt bound and max_tokens at the price, fee on
            # top), and 50 requests at once on it.
            request, _ = wire.parse_chat(dict(CHAT))
            price = int(float(PRICE) * GRAINS_PER_MINT)
            worst = charge(metering.cost(metering.prompt_bound(request) + request.max_tokens, price), FEE_BPS)
            live.run("credit", "open", gateway.url, f"{worst}grain", "--wallet", "consumer")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            with ChainClient(live.node.url) as client:
                before, coldkey_before, gw_before = client.height(), client.balance(m1.address), client.balance(gw)

            async def flood() -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=60) as http:
                    return list(await asyncio.gather(*(
                        http.post(f"{gateway.url}/v1/chat/completions", json=CHAT,
                                  headers={"authorization": f"Bearer {api_key}"}) for _ in range(50))))

            answers = asyncio.run(flood())
            statuses = sorted(answer.status_code for answer in answers)
            served = [answer for answer in answers if answer.status_code == 200]
            assert set(statuses) <= {200, 402} and 1 <= len(served) < 50, statuses
            assert all(a.json()["error"]["code"] == "insufficient_credit" for a in answers if a.status_code == 402)
            wait_until_settled(tmp_path, len(served), gateway)
            to_miner, fees = _charged(_metered(tmp_path), FEE_BPS)
            assert to_miner == sum(int(answer.headers["x-gridmint-cost"]) for answer in served)
            with ChainClient(live.node.url) as client:
                line = client.query(f"/credit/line/{consumer}/{gw}")
                assert line["spent"] == to_miner + fees <= worst
                assert line["balance"] == worst - line["spent"]
                assert client.balance(m1.address) - coldkey_before == to_miner
                now = client.height()
                assert client.balance(gw) - gw_before == fees - fees_paid(client, gw, before, now)

            # A line past its expiry is cut off: served while it runs, refused (402) once the gateway's reading of
            # the chain shows it expired (a reading is refreshed after 2 s, so a call or two may still pass).
            live.run("credit", "open", gateway.url, "1", "--blocks", "60", "--wallet", "brief")
            brief_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "brief")["api_key"]
            assert _chat(gateway, brief_key).status_code == 200
            with ChainClient(live.node.url) as client:
                expires = client.query(f"/credit/line/{open_wallet('brief', live.wallets).address}/{gw}")["expires"]
                wait_for(lambda: client.height() >= expires, "the line's expiry", timeout_s=60)
            statuses = [_chat(gateway, brief_key).status_code for _ in range(3)]
            wait_for(lambda: _chat(gateway, brief_key).status_code == 402, "the expired line refused", timeout_s=10)
            assert [_chat(gateway, brief_key).status_code for _ in range(3)] == [402] * 3, statuses
        finally:
            for process in (miner, gateway):
                process.stop()


@contextmanager
def _relay(target: str) -> Iterator[str]:
    """A malicious gateway's front door: it passes every /v1/auth call through to ``target`` and returns what
    ``target`` answers, hoping the victim signs ``target``'s challenge for it."""

    class Relay(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            answer = httpx.post(f"{target}{self.path}", content=body, headers={"content-type": "application/json"})
            self.send_response(answer.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_key_relay_between_two_gateways_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch, names=("owner", "val"), tempo=50_000, permit=False,
                     others=("honest", "mallory", "victim")) as live:
        honest = start_gateway(tmp_path, "honest")
        victim = open_wallet("victim", live.wallets).coldkey(PASSWORD)
        mallory_key = open_wallet("mallory", live.wallets).coldkey(PASSWORD)
        try:
            with _relay(honest.url) as mallory_url, ChainClient(live.node.url) as client:
                bond = int(client.query("/credit/params")["min_bond"])
                client.execute(mallory_key, [MsgRegisterGateway(mallory_url, 100, bond)])
                expected = gateway_at(client, mallory_url)  # who the victim means to deal with: mallory
                assert expected == open_wallet("mallory", live.wallets).address
                with pytest.raises(ChainError) as caught:
                    request_api_key(mallory_url, victim, expected)
                assert caught.value.kind.name == "gateway_mismatch"
            with sqlite3.connect(tmp_path / "gateway-data" / "gateway.db") as db:
                issued = db.execute("SELECT COUNT(*) FROM api_keys WHERE address = ?",
                                    (open_wallet("victim", live.wallets).address,)).fetchone()[0]
            assert issued == 0  # the honest gateway never issued a key for the victim
            # The victim talking to the honest gateway itself still gets its key.
            with ChainClient(live.node.url) as client:
                assert request_api_key(honest.url, victim, gateway_at(client, honest.url)).startswith("gmk_")
        finally:
            honest.stop()
