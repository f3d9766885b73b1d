"""Runtimes: the process runtime for real (limits, ports, logs, stopping whole process groups); docker and ray at
their SDK seams with fakes (the ray runtime also runs against a real Ray head in tests/e2e/test_ray_market.py)."""

from __future__ import annotations

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
    PortMap,
    first_failure,
    service_log_lines,
    substitute,
)
from gridmint.market.provider.runtimes.docker import PIDS_LIMIT, DockerRuntime
from gridmint.market.provider.runtimes.process import ProcessRuntime
from gridmint.market.provider.runtimes.ray import RayRuntime
from tests.support.processes import processes_of
from tests.support.waiting import wait_for

SERVE = ("import http.server, os\n"
         "print('env', os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'), os.environ.get('SECRET', 'none'), flush=True)\n"
         "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), http.server.SimpleHTTPRequestHandler)"
         ".serve_forever()\n")


def _spec(tmp_path: Path, *services: Service, memory_mb: int = 256) -> LaunchSpec:
    return LaunchSpec(9, list(services), Need(500, memory_mb, 0), (), tmp_path / "lease-9")


def _wait(condition: Any, timeout_s: float = 20) -> None:
    wait_for(condition, "the runtime", timeout_s, interval_s=0.05)


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
        (workload.disk.home / "hello.txt").write_text("from the lease's directory")
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


def test_stopping_kills_the_children_too(tmp_path: Path) -> None:
    spawn = ("import subprocess, sys, time\n"
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
             "print('child', child.pid, flush=True)\n"
             "time.sleep(600)\n")
    workload = ProcessRuntime().start(_spec(tmp_path, Service("job", None, ["python3", "-c", spawn], {}, [])))
    _wait(lambda: "child" in workload.logs(5))
    uid = workload.identity.uid
    assert len(processes_of(uid)) >= 3  # bubblewrap's init, the service, its child
    workload.stop()
    _wait(lambda: processes_of(uid) == [], timeout_s=10)


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


def test_a_service_is_reached_at_its_first_declared_port_and_without_ports_not_at_all() -> None:
    assert PortMap("10.0.0.5", {8080: 41000, 9090: 41001}).first_endpoint() == Endpoint("10.0.0.5", 41000)
    assert PortMap("10.0.0.5").first_endpoint() is None


def test_log_lines_keep_the_last_ones_each_marked_with_its_service() -> None:
    assert service_log_lines("web", "one\ntwo\nthree\n", 2) == ["[web] two", "[web] three"]
    assert service_log_lines("web", "one\n", 0) == []


class FakeContainer:
    def __init__(self, engine: FakeEngine, name: str, network: str, address: str) -> None:
        self.engine, self.name = engine, name
        self.status, self.attrs = "running", {"State": {"ExitCode": 0},
                                              "NetworkSettings": {"Networks": {network: {"IPAddress": address}}}}

    def reload(self) -> None:
        pass

    def logs(self, tail: int) -> bytes:
        return b"one\ntwo\n"

    def stop(self, timeout: int) -> None:
        self.engine.done.append(f"stop {self.name}")

    def remove(self, force: bool, v: bool) -> None:
        assert force and v  # anonymous volumes (an image's VOLUME) go with the container
        if self.engine.stuck == self.name:
            raise RuntimeError("device or resource busy")
        self.engine.done.append(f"remove {self.name}")


class FakeResource:
    """A network or volume: removing one a container still uses is refused, as the engine does."""

    def __init__(self, engine: FakeEngine, kind: str, name: str) -> None:
        self.engine, self.kind, self.name = engine, kind, name

    def remove(self, force: bool = False) -> None:
        using = [c["name"] for c in self.engine.runs if f"remove {c['name']}" not in self.engine.done]
        if using:
            raise RuntimeError(f"{self.kind} {self.name} is in use by {using[0]}")
        self.engine.done.append(f"remove {self.kind} {self.name}")


class FakeEngine:
    """The Docker SDK's client at the seam the runtime uses: containers.run, networks.create, volumes.create."""

    def __init__(self, fail_at: int | None = None, fail_network: bool = False, stuck: str = "") -> None:
        self.runs: list[dict[str, Any]] = []
        self.networks_created: list[dict[str, Any]] = []
        self.volumes_created: list[dict[str, Any]] = []
        self.done: list[str] = []
        self.fail_at, self.fail_network, self.stuck = fail_at, fail_network, stuck
        self.containers, self.networks, self.volumes = self, _Networks(self), _Volumes(self)

    def run(self, image: str, command: Any, **options: Any) -> FakeContainer:
        if self.fail_at == len(self.runs):
            raise RuntimeError("pull access denied")
        self.runs.append({"image": image, "command": command, **options})
        return FakeContainer(self, options["name"], options["network"], f"172.30.0.{len(self.runs) + 1}")


class _Networks:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def create(self, name: str, **options: Any) -> FakeResource:
        if self.engine.fail_network:
            raise RuntimeError("could not find an available, non-overlapping IPv4 address pool")
        self.engine.networks_created.append({"name": name, **options})
        return FakeResource(self.engine, "network", name)


class _Volumes:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def create(self, name: str, **options: Any) -> FakeResource:
        self.engine.volumes_created.append({"name": name, **options})
        return FakeResource(self.engine, "volume", name)


def _docker_spec(tmp_path: Path, gpus: tuple[int, ...], env: dict[str, str], *more: Service) -> LaunchSpec:
    return LaunchSpec(4, [Service("web", "nginx:1.27", None, env, [80]), *more], Need(1_500, 512, len(gpus)), gpus,
                      tmp_path)


def test_docker_containers_are_hardened_and_get_only_their_gpus(tmp_path: Path) -> None:
    engine = FakeEngine()
    workload = DockerRuntime(engine).start(_docker_spec(tmp_path, (1,), {"A": "1", "NVIDIA_VISIBLE_DEVICES": "all"}))
    run = engine.runs[0]
    assert run["image"] == "nginx:1.27" and run["name"] == "gridmint-lease-4-web"
    # No privileges: every capability dropped, no setuid gains, nothing of the host's namespaces.
    assert run["cap_drop"] == ["ALL"] and "cap_add" not in run
    assert run["security_opt"] == ["no-new-privileges:true"] and run["privileged"] is False
    assert run["ipc_mode"] == "private" and "pid_mode" not in run and "network_mode" not in run
    assert "userns_mode" not in run and "volumes_from" not in run and "devices" not in run
    # Limits: CPU quota, memory with no swap on top, processes, open files.
    assert run["nano_cpus"] == 1_500_000_000 and run["mem_limit"] == run["memswap_limit"] == "512m"
    assert run["pids_limit"] == PIDS_LIMIT and run["ulimits"] == [{"name": "nofile", "soft": 8192, "hard": 8192}]
    # A read-only root; writable only a private /tmp and the lease's own volume at /work.
    assert run["read_only"] is True and run["tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=512m"}
    assert run["volumes"] == {"gridmint-lease-4": {"bind": "/work", "mode": "rw"}} and run["working_dir"] == "/work"
    assert engine.volumes_created == [{"name": "gridmint-lease-4", "driver": "local",
                                       "labels": {"gridmint.lease": "4"}}]
    # Its own internal network; no host port published: the proxy reaches the container's own address.
    assert engine.networks_created == [{"name": "gridmint-lease-4", "driver": "bridge", "internal": True,
                                        "labels": {"gridmint.lease": "4"},
                                        "options": {"com.docker.network.bridge.name": "gml-4"}}]
    assert run["network"] == "gridmint-lease-4" and "ports" not in run and "publish_all_ports" not in run
    assert workload.endpoint("web") == Endpoint("172.30.0.2", 80)
    # The leased GPU only, and the manifest's "all" does not widen it.
    assert run["device_requests"] == [{"Driver": "nvidia", "DeviceIDs": ["1"], "Capabilities": [["gpu"]]}]
    assert run["environment"] == {"A": "1", "PORT_80": "80", "PORT": "80", "NVIDIA_VISIBLE_DEVICES": "1"}
    assert workload.states()["web"].state == RUNNING and workload.logs(5) == "[web] one\n[web] two"
    workload.stop()
    assert engine.done == ["stop gridmint-lease-4-web", "remove gridmint-lease-4-web",
                           "remove network gridmint-lease-4", "remove volume gridmint-lease-4"]


def test_docker_without_rented_gpus_gets_none_whatever_the_manifest_says(tmp_path: Path) -> None:
    engine = FakeEngine()
    DockerRuntime(engine).start(_docker_spec(tmp_path, (), {"NVIDIA_VISIBLE_DEVICES": "all"}))
    assert engine.runs[0]["device_requests"] == []
    assert engine.runs[0]["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_a_docker_start_failing_halfway_removes_what_it_created(tmp_path: Path) -> None:
    engine = FakeEngine(fail_at=1)
    spec = _docker_spec(tmp_path, (), {}, Service("worker", "busybox", ["sleep", "9"], {}, []))
    with pytest.raises(ChainError, match="pull access denied") as caught:
        DockerRuntime(engine).start(spec)
    assert caught.value.kind.name == "runtime_failed"
    assert [run["name"] for run in engine.runs] == ["gridmint-lease-4-web"]
    assert engine.done == ["stop gridmint-lease-4-web", "remove gridmint-lease-4-web",
                           "remove network gridmint-lease-4", "remove volume gridmint-lease-4"]


def test_a_docker_network_that_cannot_be_made_starts_nothing(tmp_path: Path) -> None:
    engine = FakeEngine(fail_network=True)
    with pytest.raises(ChainError, match="non-overlapping") as caught:
        DockerRuntime(engine).start(_docker_spec(tmp_path, (), {}))
    assert caught.value.kind.name == "runtime_failed"
    assert engine.runs == [] and engine.volumes_created == [] and engine.done == []


def test_docker_stop_tries_every_part_even_when_one_is_stuck(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    engine = FakeEngine(stuck="gridmint-lease-4-web")
    spec = _docker_spec(tmp_path, (), {}, Service("worker", "busybox", ["sleep", "9"], {}, []))
    workload = DockerRuntime(engine).start(spec)
    assert workload.endpoint("worker") is None  # no declared port, nothing to reach
    workload.stop()
    assert engine.done == ["stop gridmint-lease-4-web", "stop gridmint-lease-4-worker",
                           "remove gridmint-lease-4-worker"]
    assert "could not remove container web: device or resource busy" in caplog.text
    assert "could not remove the lease's network: network gridmint-lease-4 is in use" in caplog.text


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
    assert port is not None and port.host == "10.0.0.5"
    assert job["entrypoint"] == f"python serve.py --port {port.port}"
    assert (job["entrypoint_num_cpus"], job["entrypoint_num_gpus"], job["entrypoint_memory"]) == (2.0, 1, 4096 * 2**20)
    assert job["metadata"] == {"gridmint_lease": "2", "service": "api"}
    assert workload.states()["api"].state == RUNNING and workload.logs(1) == "[api] ready"
    workload.stop()
    assert workload.states()["api"].state == FAILED and "STOPPED" in workload.states()["api"].detail
