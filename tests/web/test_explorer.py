"""The explorer's JSON against a live devnode with a subnet: blocks with decoded transactions, accounts, the
metagraph and its history, the market, authorities, search; and the page and its script are served."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gridmint.chain.commitments import MsgCommit
from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from gridmint.web.app import make_app
from tests.support.live_subnet import live_subnet

pytestmark = pytest.mark.slow


def test_the_explorer_reads_the_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch, tempo=5) as live:
        sent = live.run("wallet", "transfer", "owner", open_wallet("val", live.wallets).address, "1.5",
                        "--wallet-dir", str(live.wallets))
        with TestClient(make_app(live.node.url)) as client:
            status = client.get("/api/status").json()
            assert status["chain_id"] == "gridmint-test" and status["height"] >= sent["height"]
            blocks = client.get("/api/blocks").json()
            assert blocks[0]["height"] == status["height"] or blocks[0]["height"] >= status["height"]

            block = client.get(f"/api/block/{sent['height']}").json()
            transfer = next(t for t in block["txs"] if t["hash"] == sent["hash"])
            assert transfer["code"] == 0 and transfer["signer"] == open_wallet("owner", live.wallets).address
            assert transfer["messages"] == [{"type": "bank/send", "fields": {
                "to": open_wallet("val", live.wallets).address, "amount": 1_500_000_000}}]
            assert client.get(f"/api/tx/{sent['hash']}").json()["height"] == sent["height"]

            account = client.get(f"/api/account/{open_wallet('val', live.wallets).hotkey_address('default')}").json()
            assert account["hotkey_of"] == open_wallet("val", live.wallets).address and "1" in account["registered"]

            assert [s["netuid"] for s in client.get("/api/subnets").json()] == [1]
            graph = client.get("/api/subnet/1").json()
            assert [u["uid"] for u in graph["uids"]] == [0, 1] and graph["uids"][0]["permit"] is True
            history = client.get("/api/subnet/1/history?points=5").json()["points"]
            assert len(history) >= 2 and all(len(p["incentive"]) <= 2 for p in history)
            assert client.get("/api/subnet/1/commitments").json() == {"netuid": 1, "commitments": []}
            with ChainClient(live.node.url) as chain:
                chain.execute(open_wallet("val", live.wallets).hotkey("default"), [MsgCommit(1, b"\x11" * 32, b"ok")])
            (committed,) = client.get("/api/subnet/1/commitments").json()["commitments"]
            assert committed["hash"] == "11" * 32 and committed["data"] == b"ok".hex()
            assert committed["hotkey"] == open_wallet("val", live.wallets).hotkey_address("default")
            assert client.get("/api/market").json() == {"providers": [], "orders": [], "leases": []}
            assert len(client.get("/api/authorities").json()["members"]) == 1

            assert client.get(f"/api/search?q={sent['hash']}").json() == {"kind": "tx", "target": sent["hash"]}
            assert client.get(f"/api/search?q={sent['height']}").json()["kind"] == "block"
            assert client.get("/api/search?q=" + "ab" * 32).status_code == 404
            assert client.get("/api/block/999999").status_code == 404
            assert client.get("/api/subnet/7").status_code == 404  # no such subnet
            for path in ("/api/subnet/99999", f"/api/subnet/{2**64}/history", f"/api/block/{2**64}"):
                assert client.get(path).status_code == 400  # refused before it reaches the node
            assert client.get("/api/status").json()["height"] >= status["height"]  # and the node still runs

            page = client.get("/")
            assert page.status_code == 200 and "/static/app.js" in page.text
            assert "function pageSubnet" in client.get("/static/app.js").text
