"""The compute market end to end: a devnode, provider daemons as processes, the tenant's CLI, a real workload."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from gridmint.market.deployment import parse_deployment
from gridmint.market.tenant import ProviderClient, accept_bid, create_order, wait_for_bids, wait_running
from gridmint.web.data import Explorer
from tests.support.live_subnet import fees_paid
from tests.support.market_network import deployment_yaml, live_market
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("market")]



def _balance_at(client: ChainClient, address: str, height: int) -> int:
    return int(client.query(f"/bank/balance/{address}", height=height)["balance"])


def test_cheapest_matching_provider_serves_the_workload_and_is_paid_rate_times_blocks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node_kind: str) -> None:
    with live_market(tmp_path, monkeypatch, kind=node_kind) as market:
        alpha = market.start_provider("alpha", "--cpu", "2", "--memory", "2048", "--region", "eu-west",
                                      "--price-per-cpu", "0.0004", "--withdraw-every", "0")
        beta = market.start_provider("beta", "--cpu", "1", "--memory", "1024", "--region", "us-east",
                                     "--tag", "cheap", "--price-per-cpu", "0.0002", "--withdraw-every", "0")
        file = market.write("web.yaml", deployment_yaml(greeting="bonjour"))
        tenant = market.address("tenant")
        created = market.deploy(file)

        # Both bid; the tenant took the cheaper one (beta), whose price is what the lease pays.
        prices = {b["provider"]: int(b["price"]) for b in created["bids"]}
        assert set(prices) == {alpha.address, beta.address}
        assert prices[beta.address] < prices[alpha.address]
        assert created["provider"] == beta.address
        lease_id = created["lease"]

        # The service answers through the provider's endpoint, and its logs are readable.
        endpoint = created["status"]["endpoints"]["web"]
        assert endpoint == f"{beta.url}/leases/{lease_id}/web/"
        answer = httpx.get(endpoint + "hello", timeout=10)
        assert answer.status_code == 200 and answer.text == "bonjour from /hello"
        logs = market.run("deploy", "logs", str(lease_id), "--wallet", "tenant")["logs"]
        assert "[web] listening on" in logs and "[web] served /hello" in logs
        status = market.run("deploy", "status", str(lease_id), "--wallet", "tenant")
        assert status["provider_status"]["services"]["web"]["state"] == "running"

        with market.client() as client:
            time.sleep(1.0)  # let a few blocks accrue
            closed = market.run("deploy", "close", str(lease_id), "--wallet", "tenant")
            account = client.query(f"/escrow/account/{lease_id}")
            start, end, rate = account["start"], account["closed_at"], account["rate"]
            now = client.height()
            fee = fees_paid(client, tenant, start, now)  # the closing transaction's
            blocks = end - start
            assert blocks > 0 and rate == prices[beta.address]
            # The provider received exactly rate × blocks (it sent no transaction during the lease) ...
            gained = client.balance(beta.address) - _balance_at(client, beta.address, start)
            assert gained == rate * blocks
            # ... and the tenant got the unspent deposit back (it was held since the order), less the closing fee.
            deposit = parse_deployment(file.read_text()).deposit
            returned = client.balance(tenant, height=now) - _balance_at(client, tenant, start)
            assert returned == deposit - rate * blocks - fee
            refunded = int(next(a["value"] for e in closed["events"] if e["type"] == "lease_closed"
                                for a in e["attributes"] if a["key"] == "refunded"))
            assert refunded == deposit - rate * blocks

        # The provider stopped the workload: the endpoint is gone, and so is the process.
        wait_for(lambda: httpx.get(endpoint + "hello", timeout=5).status_code == 503, "the proxy to close")
        assert "Lease 1 stopped" in beta.log()
        assert "Not bidding" not in alpha.log() and "Bid " in alpha.log()


def _processes_working_in(folder: Path) -> list[int]:
    """Pids of the processes whose working directory is ``folder`` or below it (a workload runs in its lease's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(folder)):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


def test_a_provider_stopped_with_sigterm_stops_the_workloads_it_runs(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha")) as market:
        alpha = market.start_provider("alpha", "--cpu", "1", "--memory", "1024", "--withdraw-every", "0")
        created = market.deploy(market.write("web.yaml", deployment_yaml(greeting="hi")))
        assert httpx.get(created["status"]["endpoints"]["web"] + "x", timeout=10).text == "hi from /x"
        leases = market.tmp / "provider-alpha" / "leases"
        assert _processes_working_in(leases), "the workload should be running"
        alpha.stop()  # SIGTERM, then up to 20 s
        assert alpha.process.returncode == 0, alpha.log()
        assert "Provider stopped; 1 leases' workloads were stopped." in alpha.log()
        assert _processes_working_in(leases) == []


def test_a_lease_funded_for_n_blocks_is_closed_in_block_n_and_its_workload_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node_kind: str) -> None:
    blocks_funded = 60
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha"), kind=node_kind) as market:
        price = 7_000_000  # grains per block, from the provider's expression rule
        alpha = market.start_provider("alpha", "--cpu", "1", "--memory", "1024", "--price-expr", str(price),
                                      "--withdraw-every", "10")
        file = market.write("web.yaml", deployment_yaml(max_price="0.007", deposit=f"{0.007 * blocks_funded:.3f}"))
        tenant = market.address("tenant")
        created = market.deploy(file)
        lease_id = created["lease"]
        endpoint = created["status"]["endpoints"]["web"]
        assert httpx.get(endpoint, timeout=10).status_code == 200

        with market.client() as client:
            account = wait_for(lambda: (lambda a: a if not a["open"] else None)(
                client.query(f"/escrow/account/{lease_id}")), "the escrow to run dry", timeout_s=120)
            start = account["start"]
            assert account["reason"] == "insufficient_funds"
            assert account["closed_at"] == start + blocks_funded
            assert account["balance"] == 0 and account["withdrawable"] == 0
            block = client.block(start + blocks_funded)
            assert any(e["type"] == "escrow_exhausted" for e in _block_events(client, start + blocks_funded)), block

            # Nobody gained or lost a grain: the provider got rate × N (less the fees of its own withdrawals),
            # the tenant's whole deposit went to it and nothing else.
            address = alpha.address
            now = client.height()
            provider_txs = client.nonce(address, height=now) - int(client.query(f"/tx/nonce/{address}",
                                                                                height=start)["nonce"])
            gained = client.balance(address, height=now) - _balance_at(client, address, start)
            assert provider_txs >= 1  # it withdrew during the lease
            assert gained + fees_paid(client, address, start, now) == price * blocks_funded
            assert client.balance(tenant) == _balance_at(client, tenant, start)

        # The provider saw it in that block's events and stopped the workload.
        wait_for(lambda: "escrow ran out" in alpha.log(), "the provider to stop the workload")
        assert httpx.get(endpoint, timeout=5).status_code == 503


def _block_events(client: ChainClient, height: int) -> list[dict[str, Any]]:
    results = client.call("block_results", height=str(height))
    return list(results.get("finalize_block_events") or [])


def test_a_manifest_with_another_hash_or_from_another_key_is_refused_and_nothing_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha", "mallory")) as market:
        alpha = market.start_provider("alpha", "--cpu", "1", "--memory", "1024", "--withdraw-every", "0")
        ordered = parse_deployment(deployment_yaml(greeting="ordered"))
        other = parse_deployment(deployment_yaml(greeting="swapped"))
        tenant_key = open_wallet("tenant", market.wallets).coldkey("pw")
        mallory_key = open_wallet("mallory", market.wallets).coldkey("pw")
        with market.client() as client:
            order_id, _ = create_order(client, tenant_key, ordered)
            bids = wait_for_bids(client, order_id, 1, 30)
            lease_id = accept_bid(client, tenant_key, order_id, bids[0]["provider"])
        with ProviderClient(tenant_key, alpha.address, alpha.url) as tenant, \
                ProviderClient(mallory_key, alpha.address, alpha.url) as mallory:
            wait_for(lambda: "Won order" in alpha.log(), "the provider to see its lease")

            mismatch = _error_of(lambda: tenant.send_manifest(lease_id, other.manifest))
            assert (mismatch["code"], mismatch["name"]) == ("provider/5", "manifest_mismatch")

            foreign = _error_of(lambda: mallory.send_manifest(lease_id, ordered.manifest))
            assert foreign["name"] == "not_permitted"
            assert _error_of(lambda: mallory.logs(lease_id))["name"] == "not_permitted"

            # Nothing changed: still waiting for the manifest, no service, no working directory.
            status = tenant.status(lease_id)
            assert status["state"] == "awaiting_manifest" and status["services"] == {}
            assert not (market.tmp / "provider-alpha" / "leases" / str(lease_id)).exists()

            # The right manifest from the right key still starts it.
            started = tenant.send_manifest(lease_id, ordered.manifest)
            assert started["state"] == "running"
            wait_for(lambda: httpx.get(f"{alpha.url}/leases/{lease_id}/web/x", timeout=5).status_code == 200,
                  "the service to answer")
            assert httpx.get(f"{alpha.url}/leases/{lease_id}/web/x", timeout=5).text == "ordered from /x"
            again = _error_of(lambda: tenant.send_manifest(lease_id, ordered.manifest))
            assert again["name"] == "already_running"


def _error_of(call: Any) -> dict[str, Any]:
    from gridmint.chain.errors import ChainError

    try:
        call()
    except ChainError as error:
        return {"code": f"{error.kind.module}/{error.kind.code}", "name": error.kind.name, "message": error.message}
    raise AssertionError("expected the provider to refuse")


def test_an_order_nobody_can_serve_gets_no_bid_and_the_tenant_is_told_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha")) as market:
        market.start_provider("alpha", "--cpu", "1", "--memory", "512", "--withdraw-every", "0")
        file = market.write("big.yaml", deployment_yaml(memory=4096))
        with market.client() as client:
            before_height = client.height()
            before = client.balance(market.address("tenant"), height=before_height)
        error = market.run_fails("deploy", "create", str(file), "--wallet", "tenant", "--auto-accept",
                                 "cheapest", "--bid-wait", "1")
        assert error["name"] == "no_bids" and "market match" in error["message"]
        matches = market.run("market", "match", str(file))
        assert matches[0]["fits"] is False and "memory 512 MB < 4096 MB" in matches[0]["reason"]
        # The order stays open until the tenant closes it; then only the two fees are gone.
        market.run("deploy", "close-order", "1", "--wallet", "tenant")  # the chain's first order
        with market.client() as client:
            now = client.height()
            paid = fees_paid(client, market.address("tenant"), before_height, now)
            assert paid > 0 and client.balance(market.address("tenant"), height=now) == before - paid


def test_a_workload_that_fails_has_its_lease_closed_by_the_provider_with_a_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = "import sys, time\nprint('working', flush=True)\ntime.sleep(3)\nsys.exit(3)\n"
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha")) as market:
        alpha = market.start_provider("alpha", "--cpu", "1", "--memory", "1024", "--withdraw-every", "0")
        file = market.write("job.yaml", json.dumps({
            "version": 1, "services": {"job": {"command": ["python3", "-c", crash]}},
            "resources": {"cpu": 0.5, "memory": 256}, "price": {"max_per_block": "0.001"}, "deposit": "5"}))
        created = market.deploy(file)
        lease_id = created["lease"]
        with market.client() as client:
            account = wait_for(lambda: (lambda a: a if not a["open"] else None)(
                client.query(f"/escrow/account/{lease_id}")), "the provider to close the lease")
        assert account["reason"] == "closed by the provider (code 1)"
        assert "Closing lease 1: service job exited with code 3 (reason code 1)" in alpha.log()
        status = market.run("deploy", "status", str(lease_id), "--wallet", "tenant")
        assert status["lease"]["open"] is False and status["provider_status"] is None


def test_leases_close_with_the_reason_that_ended_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reason 2: a service that finished (exit 0); 3: one that stopped accepting connections on its port while
    still running; 4: a manifest this runtime cannot run (an image on the process runtime)."""
    finished = "print('done', flush=True)\n"
    goes_deaf = ("import os, socket, time\n"
                 "s = socket.create_server(('127.0.0.1', int(os.environ['PORT'])))\n"
                 "time.sleep(2)\ns.close()\ntime.sleep(600)\n")
    jobs = {
        2: {"command": ["python3", "-c", finished]},
        3: {"command": ["python3", "-c", goes_deaf], "ports": [8080]},
        4: {"image": "nginx:1.27", "ports": [80]},
    }
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha")) as market:
        market.start_provider("alpha", "--cpu", "1", "--memory", "1024", "--withdraw-every", "0",
                              "--health-seconds", "0.3")
        for lease_id, (code, service) in enumerate(jobs.items(), start=1):  # one lease each, ids in order
            file = market.write(f"job{code}.yaml", json.dumps({
                "version": 1, "services": {"job": service}, "resources": {"cpu": 0.5, "memory": 256},
                "price": {"max_per_block": "0.001"}, "deposit": "5"}))
            if code == 4:  # the provider refuses the manifest (the tenant's command says so) and ends the lease
                market.run_fails("deploy", "create", str(file), "--wallet", "tenant", "--auto-accept", "cheapest",
                                 "--bid-wait", "30")
            else:
                assert market.deploy(file)["lease"] == lease_id
            with market.client() as client:
                path = f"/escrow/account/{lease_id}"
                account = wait_for(lambda: (lambda a: a if not a["open"] else None)(client.query(path)),  # noqa: B023
                                f"the provider to close lease {lease_id}")
            assert account["reason"] == f"closed by the provider (code {code})", (code, account)


def test_a_provider_restarted_under_a_running_lease_picks_it_up_and_is_paid_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider stops (its workloads with it) and starts again: it finds its open lease on chain, runs the
    manifest the tenant sends again, and over the whole lease it is paid rate × blocks exactly once (its own
    withdrawals, every 5 blocks, counted with their fees)."""
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha")) as market:
        options = ("--cpu", "1", "--memory", "1024", "--withdraw-every", "5")
        alpha = market.start_provider("alpha", *options)
        file = market.write("web.yaml", deployment_yaml(greeting="again"))
        created = market.deploy(file)
        lease_id = created["lease"]
        assert httpx.get(created["status"]["endpoints"]["web"], timeout=10).text == "again from /"
        alpha.stop()
        alpha = market.start_provider("alpha", *options)
        tenant = open_wallet("tenant", market.wallets).coldkey("pw")
        manifest = parse_deployment(file.read_text()).manifest
        with market.client() as client:
            wait_for(lambda: "lease 1" in alpha.log().lower(), "the lease picked up")
            with ProviderClient(tenant, alpha.address, alpha.url) as calls:
                calls.send_manifest(lease_id, manifest)
                status = wait_running(calls, lease_id, 60)
            assert httpx.get(alpha.url + str(status["services"]["web"]["path"]), timeout=10).text == "again from /"
            market.run("deploy", "close", str(lease_id), "--wallet", "tenant")
            account = client.query(f"/escrow/account/{lease_id}")
            start, end, rate = account["start"], account["closed_at"], account["rate"]
            wait_for(lambda: int(client.query(f"/escrow/account/{lease_id}")["withdrawable"]) == 0,
                  "the provider's last withdrawal")
            now = client.height()
            gained = client.balance(alpha.address, height=now) - _balance_at(client, alpha.address, start)
            assert gained == rate * (end - start) - fees_paid(client, alpha.address, start, now)


def test_the_tenant_can_review_bids_accept_one_and_top_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha")) as market:
        alpha = market.start_provider("alpha", "--cpu", "1", "--memory", "1024", "--withdraw-every", "0")
        file = market.write("web.yaml", deployment_yaml(greeting="manual"))
        shown = market.run("deploy", "create", str(file), "--wallet", "tenant", "--bid-wait", "30")
        assert "lease" not in shown and [b["provider"] for b in shown["bids"]] == [alpha.address]
        order_id = shown["order"]
        assert market.run("deploy", "bids", str(order_id))[0]["provider"] == alpha.address
        with market.client() as client:  # the explorer shows the open order with its bid
            seen = Explorer(client).market()
        assert [(o["id"], [b["provider"] for b in o["bids"]]) for o in seen["orders"]] == [(order_id, [alpha.address])]
        accepted = market.run("deploy", "accept", str(order_id), alpha.address, "--wallet", "tenant")
        lease_id = accepted["lease"]
        assert httpx.get(accepted["status"]["endpoints"]["web"], timeout=10).text == "manual from /"
        with market.client() as client:
            before = client.query(f"/escrow/account/{lease_id}")
            market.run("deploy", "top-up", str(lease_id), "2", "--wallet", "tenant")
            after = client.query(f"/escrow/account/{lease_id}")
        assert after["exhaustion_block"] > before["exhaustion_block"]
        with market.client() as client:  # ... and the lease with what is left in escrow
            lease = Explorer(client).market()["leases"][0]
        assert lease["id"] == lease_id and lease["open"] and lease["escrow"]["balance"] > 0
        market.run("deploy", "close", str(lease_id), "--wallet", "tenant")
        error = market.run_fails("deploy", "top-up", str(lease_id), "1", "--wallet", "tenant")
        assert error["name"] == "account_closed"
