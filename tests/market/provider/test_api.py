"""The provider's endpoint refuses before doing work: the signature is checked before the body is read as JSON, the
lease's tenant before anything runs; the proxy forwards only to running leases. (Live flows: tests/e2e.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gridmint.chain.crypto import format_address
from gridmint.client.signing import sign_request
from gridmint.market.provider.api import MAX_TENANT_BODY, ProviderAPI
from gridmint.market.provider.daemon import Lease, Provider, ProviderConfig
from gridmint.market.provider.inventory import Capacity, Need
from gridmint.market.provider.pricing import PerUnit
from tests.support.chain import key
from tests.support.runtimes import UnstartableRuntime


class NoChain:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the chain must not be asked ({name})")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, Provider, UnstartableRuntime]:
    runtime = UnstartableRuntime("recording")
    provider = Provider(key("provider"), NoChain(), Capacity(2_000, 2_048, 1_000), PerUnit(1, 1, 1),  # type: ignore[arg-type]
                        runtime, ProviderConfig("http://127.0.0.1:1"), tmp_path)
    provider.leases[5] = Lease(5, 1, format_address(key("tenant").address), 10, Need(500, 256, 0), ())
    return TestClient(ProviderAPI(provider).app), provider, runtime


def _post(client: TestClient, op: str, body: bytes, signer: str = "tenant", callee: str | None = None,
          tamper: bool = False) -> Any:
    headers = sign_request(key(signer), callee or format_address(key("provider").address), body)
    if tamper:
        headers["x-gm-signature"] = "00" * 64
    return client.post(f"/tenant/{op}", content=body, headers=headers)


def test_a_bad_signature_is_refused_before_the_body_is_parsed(setup: Any) -> None:
    client, provider, runtime = setup
    answer = _post(client, "manifest", b"{not json", tamper=True)
    assert answer.status_code == 401 and answer.json()["error"]["name"] == "bad_signature"
    answer = client.post("/tenant/manifest", content=b"{}")
    assert answer.status_code == 401 and answer.json()["error"]["name"] == "missing_signature"
    assert runtime.started == [] and provider.leases[5].state == "awaiting_manifest"


def test_a_request_for_another_provider_is_refused(setup: Any) -> None:
    client, _, runtime = setup
    body = json.dumps({"lease": 5, "manifest": {}}).encode()
    answer = _post(client, "manifest", body, callee=format_address(key("elsewhere").address))
    assert answer.status_code == 421 and answer.json()["error"]["name"] == "wrong_callee"
    assert runtime.started == []


def test_someone_other_than_the_tenant_is_refused_and_nothing_changes(setup: Any) -> None:
    client, provider, runtime = setup
    body = json.dumps({"lease": 5, "manifest": {"version": 1, "services": {}}}).encode()
    answer = _post(client, "manifest", body, signer="mallory")
    assert answer.status_code == 403 and answer.json()["error"] == {
        "code": "auth/7", "name": "not_permitted",
        "message": "lease 5 belongs to another tenant; sign with the tenant's key"}
    assert _post(client, "logs", json.dumps({"lease": 5}).encode(), signer="mallory").status_code == 403
    assert runtime.started == [] and provider.leases[5].state == "awaiting_manifest"


def test_the_same_signed_request_twice_is_a_replay(setup: Any) -> None:
    client, _, _ = setup
    body = json.dumps({"lease": 5}).encode()
    headers = sign_request(key("tenant"), format_address(key("provider").address), body)
    assert client.post("/tenant/status", content=body, headers=headers).status_code == 200
    again = client.post("/tenant/status", content=body, headers=headers)
    assert again.status_code == 401 and again.json()["error"]["name"] == "replayed_nonce"


@pytest.mark.parametrize(("op", "body", "status", "name"), [
    ("status", b"x" * (MAX_TENANT_BODY + 1), 400, "bad_request"),
    ("reboot", b"{}", 400, "bad_request"),
    ("status", b"[1, 2]", 400, "bad_request"),
    ("status", b'{"lease": true}', 400, "bad_request"),
    ("status", b"\xff", 400, "bad_request"),
    ("status", b'{"lease": 6}', 404, "unknown_lease"),
    ("logs", b'{"lease": 5, "tail": 100000}', 400, "bad_request"),
])
def test_malformed_calls_get_a_clear_error(setup: Any, op: str, body: bytes, status: int, name: str) -> None:
    client, _, runtime = setup
    answer = _post(client, op, body)
    assert answer.status_code == status and answer.json()["error"]["name"] == name
    assert runtime.started == []


def test_the_tenant_sees_its_lease_waiting_for_the_manifest(setup: Any) -> None:
    client, _, _ = setup
    answer = _post(client, "status", json.dumps({"lease": 5}).encode())
    assert answer.status_code == 200
    assert answer.json()["state"] == "awaiting_manifest" and answer.json()["services"] == {}


def test_the_proxy_serves_only_running_leases(setup: Any) -> None:
    client, _, _ = setup
    for path in ("/leases/5/web/", "/leases/99/web/x"):
        answer = client.get(path)
        assert answer.status_code == 503 and answer.json()["error"]["name"] == "not_running"
    assert client.get("/health").json()["leases"] == 0
    assert b"gridmint_provider_refused" in client.get("/metrics").content
