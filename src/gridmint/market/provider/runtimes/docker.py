"""Docker runtime: each service a container through the Docker SDK, where an engine is reachable.

Containers get the lease's CPU quota (``nano_cpus``), memory limit and GPUs (a device request for the leased
indices); each declared port is published on a loopback port of the provider's choosing, which the reverse proxy
forwards to. Stopping removes the containers. The SDK is optional (``pip install docker``); the client is passed in
by tests, which use a fake engine at this seam since these machines run no Docker engine.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from gridmint.market.provider.runtimes.base import (
    EXITED,
    FAILED,
    RUNNING,
    RUNTIME_FAILED,
    LaunchSpec,
    PortMap,
    ServiceState,
    tail_lines,
)
from gridmint.ports import free_port

STOP_TIMEOUT_S = 5


@dataclass
class DockerWorkload:
    containers: dict[str, tuple[Any, PortMap]] = field(default_factory=dict)

    def states(self) -> dict[str, ServiceState]:
        out = {}
        for name, (container, _) in self.containers.items():
            container.reload()
            status = container.status
            if status in ("created", "running", "restarting"):
                out[name] = ServiceState(RUNNING, None, status)
            else:
                code = int(container.attrs.get("State", {}).get("ExitCode", -1))
                out[name] = ServiceState(EXITED if code == 0 else FAILED, code, f"container {status} ({code})")
        return out

    def endpoint(self, service: str) -> tuple[str, int] | None:
        entry = self.containers.get(service)
        if entry is None or not entry[1].ports:
            return None
        return entry[1].host, next(iter(entry[1].ports.values()))

    def logs(self, tail: int) -> str:
        lines = []
        for name, (container, _) in self.containers.items():
            text = container.logs(tail=tail).decode(errors="replace")
            lines += [f"[{name}] {line}" for line in tail_lines(text, tail)]
        return "\n".join(lines)

    def stop(self) -> None:
        for container, _ in self.containers.values():
            try:
                container.stop(timeout=STOP_TIMEOUT_S)
            finally:
                container.remove(force=True)


class DockerRuntime:
    name = "docker"

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def _engine(self) -> Any:
        if self._client is None:
            try:
                # Imported by name: the SDK is optional and untyped.
                self._client = importlib.import_module("docker").from_env()
            except Exception as error:
                raise RUNTIME_FAILED(f"no Docker engine is reachable ({error.__class__.__name__}); "
                                     "install the docker SDK and start the engine, or use --runtime process") from None
        return self._client

    def start(self, spec: LaunchSpec) -> DockerWorkload:
        engine = self._engine()
        workload = DockerWorkload()
        try:
            for service in spec.services:
                ports = PortMap("127.0.0.1", {p: free_port() for p in service.ports})
                env = {**service.env, **{f"PORT_{p}": str(p) for p in service.ports}}
                if service.ports:
                    env["PORT"] = str(service.ports[0])
                gpus = [{"Driver": "nvidia", "DeviceIDs": [str(g) for g in spec.gpus], "Capabilities": [["gpu"]]}] \
                    if spec.gpus else []
                container = engine.containers.run(
                    service.image or "python:3.11-slim", service.command, detach=True, environment=env,
                    name=f"gridmint-lease-{spec.lease_id}-{service.name}",
                    ports={f"{p}/tcp": ("127.0.0.1", real) for p, real in ports.ports.items()},
                    nano_cpus=spec.need.cpu_millis * 1_000_000, mem_limit=f"{spec.need.memory_mb}m",
                    device_requests=gpus, labels={"gridmint.lease": str(spec.lease_id)})
                workload.containers[service.name] = (container, ports)
        except Exception as error:
            workload.stop()
            raise RUNTIME_FAILED(f"Docker refused lease {spec.lease_id}: {error}") from None
        return workload
