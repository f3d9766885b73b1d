"""The same deployment on the ``ray`` runtime: a real local Ray head started here, the job API submitting it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gridmint.ports import free_port
from tests.support.market_network import deployment_yaml, live_market
from tests.support.waiting import wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]



@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[str]:
    """A Ray head on loopback with its dashboard (the job API); stopped, with all its processes, afterwards."""
    ray = Path(sys.executable).parent / "ray"
    assert ray.exists(), "Ray is not installed: `make test` installs the [ray] extra"
    gcs, dashboard = free_port(), free_port()
    temp = Path("/tmp") / f"ray-{gcs}"  # Ray's socket paths must stay short; tmp_path is too long
    subprocess.run([str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
                    "--num-cpus=2", "--num-gpus=0", "--object-store-memory=100000000", "--disable-usage-stats",
                    f"--temp-dir={temp}"], check=True, capture_output=True, timeout=180)
    try:
        address = f"http://127.0.0.1:{dashboard}"
        wait_healthy(address, timeout_s=60, path="/api/version")
        yield address
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_deployment_runs_as_a_ray_job_behind_the_providers_endpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_head: str) -> None:
    from ray.job_submission import JobSubmissionClient

    with live_market(tmp_path, monkeypatch, names=("tenant", "alpha")) as market:
        alpha = market.start_provider("alpha", "--cpu", "2", "--memory", "2048", "--runtime", "ray",
                                      "--ray-address", ray_head, "--withdraw-every", "0",
                                      "--trusted-tenant", market.address("tenant"))  # ray is single-tenant
        file = market.write("web.yaml", deployment_yaml(greeting="from ray"))
        created = market.deploy(file, "--start-timeout", "120")
        lease_id = created["lease"]
        assert created["status"]["runtime"] == "ray"
        endpoint = created["status"]["endpoints"]["web"]
        answer = httpx.get(endpoint + "job", timeout=10)
        assert answer.status_code == 200 and answer.text == "from ray from /job"

        jobs = [job for job in JobSubmissionClient(ray_head).list_jobs()
                if (job.metadata or {}).get("gridmint_lease") == str(lease_id)]
        assert len(jobs) == 1 and str(jobs[0].status.value) == "RUNNING"
        assert jobs[0].entrypoint.startswith("python3 -c")
        logs = market.run("deploy", "logs", str(lease_id), "--wallet", "tenant")["logs"]
        assert "[web] listening on" in logs

        market.run("deploy", "close", str(lease_id), "--wallet", "tenant")
        deadline = time.monotonic() + 60
        while str(JobSubmissionClient(ray_head).get_job_status(jobs[0].submission_id).value) != "STOPPED":
            assert time.monotonic() < deadline, alpha.log()
            time.sleep(0.3)
        while httpx.get(endpoint + "job", timeout=5).status_code != 503:  # the provider stopped serving it
            assert time.monotonic() < deadline, alpha.log()
            time.sleep(0.3)
