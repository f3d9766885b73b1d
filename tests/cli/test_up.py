"""`gridmint up` brings the whole local network up from nothing, an OpenAI client gets SmolLM2's text through its
gateway, the explorer shows SmolLM2's miner gaining incentive after the first epochs while the echo miner gets
none, `gridmint down` leaves no process behind, and `up` again resumes the same chain with the same API key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from gridmint.cli.up import statsmodels_installed
from gridmint.client.chain_client import ChainClient
from gridmint.node.processes import process_alive
from tests.support.ports import free_port_range

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("up")]


def _gridmint(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "gridmint.cli.main", "--json", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def test_up_serves_smollm2_down_stops_everything_and_up_resumes(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "local")
    first = _gridmint("up", "--data-dir", data_dir, "--port-base", str(free_port_range(10)), "--miners", "2")
    try:
        client = openai.OpenAI(base_url=str(first["base_url"]), api_key=str(first["api_key"]), max_retries=2)
        answer = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=16,
                                                messages=[{"role": "user", "content": "Say hello."}])
        assert answer.choices[0].message.content
        models = {m.id for m in client.models.list().data}
        assert {"smollm2-135m-instruct", "echo", "wordllama-l2_supercat-256", "subnet-1", "subnet-2"} <= models
        _incentives_change_in_the_explorer(str(first["explorer"]))
        gateway = str(first["base_url"]).removesuffix("/v1")
        auth = {"authorization": f"Bearer {first['api_key']}"}
        timegpt = {m["name"] for m in httpx.get(f"{gateway}/v2/models", headers=auth, timeout=10).json()["models"]}
        assert {"timegpt-2.1", "naive", "subnet-3"} <= timegpt
        forecast = httpx.post(f"{gateway}/v2/forecast", headers=auth, timeout=60, json={
            "series": {"y": [float(v % 7) for v in range(40)], "sizes": [40]}, "model": "timegpt-2.1", "h": 6,
            "freq": "D", "level": [80]})
        assert forecast.status_code == 200 and len(forecast.json()["mean"]) == 6, forecast.text
        pids = dict(first["processes"])  # type: ignore[call-overload]
        forecasters = {"forecast", "naive"} if statsmodels_installed() else {"naive"}
        assert set(pids) == {"node", "gateway", "smol", "smol2", "weak", "embed", "validator-1", "validator-2",
                             "validator-3", "provider", "explorer", *forecasters}
        logs = Path(str(first["logs"]))
        for netuid in (1, 2):  # their probes go through the gateway, as a consumer's requests
            assert "probing through the gateway" in (logs / f"validator-{netuid}.log").read_text()
        assert "asking miners directly" in (logs / "validator-3.log").read_text()
        with ChainClient(str(first["node"])) as chain:
            height = chain.height()
    finally:
        stopped = _gridmint("down", "--data-dir", data_dir)
    assert len(stopped["stopped"]) == len(pids)  # type: ignore[arg-type]
    assert not [name for name, pid in pids.items() if process_alive(int(pid))]

    again = _gridmint("up", "--data-dir", data_dir)
    try:
        assert again["api_key"] == first["api_key"] and again["base_url"] == first["base_url"]
        assert int(str(again["height"])) >= height
    finally:
        _gridmint("down", "--data-dir", data_dir)
    assert _gridmint("down", "--data-dir", data_dir)["stopped"] == []


def _incentives_change_in_the_explorer(explorer: str, timeout_s: float = 150) -> None:
    """The validator's weights reach the metagraph: SmolLM2's miner earns incentive, the echo miner does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = httpx.get(explorer + "api/subnet/1", timeout=10).json()["uids"]
        smol = max((r for r in rows if "smollm2-135m-instruct" in r["models"]), key=lambda r: r["incentive"])
        if smol["incentive"] > 0.3:
            echo = next(r for r in rows if "echo" in r["models"])
            assert echo["incentive"] < 0.1
            points = httpx.get(explorer + "api/subnet/1/history?points=10", timeout=10).json()["points"]
            at_start, now = points[0]["incentive"], points[-1]["incentive"]
            assert (smol["uid"] >= len(at_start) or at_start[smol["uid"]] == 0) and now[smol["uid"]] > 0
            return
        time.sleep(2)
    raise AssertionError("the SmolLM2 miner never earned incentive")
