"""Runtimes: the process runtime for real (limits, ports, logs, stopping whole process groups); docker and ray at
their SDK seams with fakes (the ray runtime also runs against a real Ray head in tests/e2e/test_ray_market.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain.errors import ChainError
from gridmint.market.deployment import Service
from gridmint.market.provider.inventory import Need
from gridmint.market.provider.runtimes.base import (
    EXITED,
    FAILED,
    RUNNING,
    Endpoint,
    LaunchSpec,
    first_failure,
    substitute,
)
from gridmint.market.provider.runtimes.docker import DockerRuntime
from gridmint.market.provider.runtimes.process import ProcessRuntime
from gridmint.market.provider.runtimes.ray import RayRuntime

SERVE = ("import http.server, os\n"
         "print('env', os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'), os.environ.get('SECRET', 'none'), flush=True)\n"
         "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), http.server.SimpleHTTPRequestHandler)"
         ".serve_forever()\n")


def _spec(tmp_path: Path, *services: Service, memory_mb: int = 256) -> LaunchSpec:
    return LaunchSpec(9, list(services), Need(500, memory_mb, 0), (), tmp_path / "lease-9")


def _wait(condition: Any, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _get(endpoint: Endpoint | None, path: str) -> str | None:
    """GET over a connection made the way the provider's proxy makes it (inside the lease's network)."""
    if endpoint is None:
        return None
    try:
        with endpoint.connect(2.0) as connection:
            connection.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            answer = b"".join(iter(lambda: connection.recv(65536), b""))
    except OSError:
        return None
    return answer.partition(b"\r\n\r\n")[2].decode(errors="replace")


def test_a_service_runs_on_its_port_in_its_directory_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET", "the provider's")
    workload = ProcessRuntime().start(_spec(tmp_path, Service("web", None, ["python3", "-c", SERVE], {}, [8080])))
    try:
        assert workload.disk is not None
        (workload.disk.mountpoint / "hello.txt").write_text("from the lease's directory")
        endpoint = workload.endpoint("web")
        _wait(lambda: _get(endpoint, "/hello.txt") == "from the lease's directory")
        assert workload.states() == {"web": workload.states()["web"]} and workload.states()["web"].state == RUNNING
        # No GPU leased: none visible; the provider's own environment is not inherited.
        _wait(lambda: "env" in workload.logs(10))
        assert "[web] env unset none" in workload.logs(10)
    finally:
        workload.stop()
    assert workload.states()["web"].state in (EXITED, FAILED)
    assert _get(endpoint, "/hello.txt") is None
    assert not (tmp_path / "lease-9").exists(), "the lease's disk is removed with it"


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_stopping_kills_the_children_too(tmp_path: Path) -> None:
    spawn = ("import subprocess, sys, time\n"
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
             "print('child', child.pid, flush=True)\n"
             "time.sleep(600)\n")
    workload = ProcessRuntime().start(_spec(tmp_path, Service("job", None, ["python3", "-c", spawn], {}, [])))
    _wait(lambda: "child" in workload.logs(5))
    uid = workload.identity.uid
    assert len(_processes_of(uid)) >= 3  # bubblewrap's init, the service, its child
    workload.stop()
    _wait(lambda: _processes_of(uid) == [], timeout_s=10)


def test_a_lease_over_its_memory_is_killed_and_says_why(tmp_path: Path) -> None:
    grab = "x = bytearray(400 * 2**20)\nprint('allocated', flush=True)\n"
    workload = ProcessRuntime().start(_spec(tmp_path, Service("hog", None, ["python3", "-c", grab], {}, []),
                                            memory_mb=128))
    try:
        _wait(lambda: workload.states()["hog"].state != RUNNING)
        state = workload.states()["hog"]
        assert state.state == FAILED and "over its memory limit of 128 MB" in state.detail
        assert "allocated" not in workload.logs(20)
        assert first_failure(workload.states()) == ("hog", state)
    finally:
        workload.stop()


def test_an_image_cannot_run_as_a_process_and_nothing_starts(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="names an image") as caught:
        ProcessRuntime().start(_spec(tmp_path, Service("web", "nginx:1.27", None, {}, [80])))
    assert caught.value.kind.name == "unsupported_manifest"
    assert not (tmp_path / "lease-9").exists()


def test_a_missing_program_fails_the_service(tmp_path: Path) -> None:
    workload = ProcessRuntime().start(_spec(tmp_path, Service("x", None, ["no-such-program-here"], {}, [])))
    try:
        _wait(lambda: workload.states()["x"].state != RUNNING)
        assert workload.states()["x"].state == FAILED and "no-such-program-here" in workload.logs(5)
    finally:
        workload.stop()


def test_port_variables_are_substituted_and_nothing_else() -> None:
    assert substitute(["serve", "--port=${PORT}", "${PORT_8080}", "${HOME}"], {"PORT": "9", "PORT_8080": "9"}) == \
        ["serve", "--port=9", "9", "${HOME}"]


class FakeContainer:
    def __init__(self, status: str = "running", code: int = 0) -> None:
        self.status, self.attrs = status, {"State": {"ExitCode": code}}
        self.stopped = self.removed = False

    def reload(self) -> None:
        pass

    def logs(self, tail: int) -> bytes:
        return b"one\ntwo\n"

    def stop(self, timeout: int) -> None:
        self.stopped = True

    def remove(self, force: bool) -> None:
        self.removed = True


class FakeEngine:
    def __init__(self, fail: bool = False) -> None:
        self.runs: list[dict[str, Any]] = []
        self.fail = fail
        self.containers = self

    def run(self, image: str, command: Any, **options: Any) -> FakeContainer:
        if self.fail:
            raise RuntimeError("pull access denied")
        self.runs.append({"image": image, "command": command, **options})
        return FakeContainer()


def test_docker_gets_limits_gpus_and_loopback_ports(tmp_path: Path) -> None:
    engine = FakeEngine()
    spec = LaunchSpec(4, [Service("web", "nginx:1.27", None, {"A": "1"}, [80])], Need(1_500, 512, 1), (1,),
                      tmp_path)
    workload = DockerRuntime(engine).start(spec)
    run = engine.runs[0]
    assert run["image"] == "nginx:1.27" and run["nano_cpus"] == 1_500_000_000 and run["mem_limit"] == "512m"
    assert run["device_requests"][0]["DeviceIDs"] == ["1"]
    assert run["environment"] == {"A": "1", "PORT_80": "80", "PORT": "80"}
    published = run["ports"]["80/tcp"]
    assert published[0] == "127.0.0.1" and workload.endpoint("web") == published
    assert workload.states()["web"].state == RUNNING and workload.logs(5) == "[web] one\n[web] two"
    workload.stop()
    container = workload.containers["web"][0]
    assert container.stopped and container.removed


def test_docker_refusal_is_a_runtime_error(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="pull access denied") as caught:
        DockerRuntime(FakeEngine(fail=True)).start(LaunchSpec(4, [Service("w", "x", None, {}, [])], Need(1, 1, 0),
                                                              (), tmp_path))
    assert caught.value.kind.name == "runtime_failed"


class FakeJobs:
    class Status:
        def __init__(self, value: str) -> None:
            self.value = value

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.status = "RUNNING"

    def submit_job(self, **job: Any) -> str:
        self.submitted.append(job)
        return str(job["submission_id"])

    def get_job_status(self, job_id: str) -> FakeJobs.Status:
        return self.Status(self.status)

    def get_job_logs(self, job_id: str) -> str:
        return "ready\n"

    def stop_job(self, job_id: str) -> None:
        self.status = "STOPPED"


def test_ray_jobs_carry_the_leases_resources(tmp_path: Path) -> None:
    jobs = FakeJobs()
    runtime = RayRuntime("http://10.0.0.5:8265", client=jobs)
    spec = LaunchSpec(2, [Service("api", None, ["python", "serve.py", "--port", "${PORT}"], {}, [8000])],
                      Need(2_000, 4_096, 1), (0,), tmp_path)
    workload = runtime.start(spec)
    job = jobs.submitted[0]
    port = workload.endpoint("api")
    assert port is not None and port[0] == "10.0.0.5"
    assert job["entrypoint"] == f"python serve.py --port {port[1]}"
    assert (job["entrypoint_num_cpus"], job["entrypoint_num_gpus"], job["entrypoint_memory"]) == (2.0, 1, 4096 * 2**20)
    assert job["metadata"] == {"gridmint_lease": "2", "service": "api"}
    assert workload.states()["api"].state == RUNNING and workload.logs(1) == "[api] ready"
    workload.stop()
    assert workload.states()["api"].state == FAILED and "STOPPED" in workload.states()["api"].detail
