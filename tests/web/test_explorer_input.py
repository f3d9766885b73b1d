"""The explorer's routes answer JSON with a 4xx or 502 whatever they are sent, never a 500: numbers beyond what the
chain accepts are refused before anything reaches the node (a node that is down makes that plain: a request that
got through would be a 502)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from gridmint.ports import free_port
from gridmint.web.app import make_app
from gridmint.web.data import Explorer


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(f"http://127.0.0.1:{free_port()}"), raise_server_exceptions=False)


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/subnet/99999", "netuid: 99999 is out of range; expected a whole number from 0 to 65535"),
    (f"/api/subnet/{2**70}", "expected a whole number from 0 to 65535"),
    ("/api/subnet/65536/history", "expected a whole number from 0 to 65535"),
    ("/api/subnet/65536/commitments", "expected a whole number from 0 to 65535"),
    (f"/api/block/{2**63}", f"expected a whole number from 0 to {2**63 - 1}"),
])
def test_numbers_out_of_range_are_a_400_that_names_the_range(client: TestClient, path: str, expected: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 400 and expected in answer.json()["error"]


def test_a_node_that_is_down_is_a_502(client: TestClient) -> None:
    answer = client.get("/api/subnet/65535")
    assert answer.status_code == 502 and "cannot reach the node" in answer.json()["error"]


def test_an_answer_the_explorer_cannot_read_is_a_502(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(self: Explorer) -> None:
        raise KeyError("sync_info")

    monkeypatch.setattr(Explorer, "status", unreadable)
    client = TestClient(make_app(f"http://127.0.0.1:{free_port()}"), raise_server_exceptions=False)
    answer = client.get("/api/status")
    assert answer.status_code == 502 and "KeyError" in answer.json()["error"]


def test_a_search_for_other_digits_is_not_a_block(client: TestClient) -> None:
    assert client.get("/api/search?q=١٢").json() == {"kind": "none", "target": "١٢"}
    assert client.get(f"/api/search?q={10**30}").json()["kind"] == "none"
