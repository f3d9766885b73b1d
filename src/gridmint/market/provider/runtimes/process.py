"""The default runtime: each service a subprocess in the lease's own directory, limited, and killed with its children.

Each service runs in a new session (its own process group), so stopping it signals everything it started:
SIGTERM, then SIGKILL after a grace period. Output goes to ``<workdir>/<service>.log``. GPUs are pinned through
``CUDA_VISIBLE_DEVICES`` (empty when the lease has none, so a workload cannot reach GPUs it did not rent).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gridmint.market.provider.runtimes.base import (
    EXITED,
    FAILED,
    RUNNING,
    RUNTIME_FAILED,
    UNSUPPORTED_MANIFEST,
    LaunchSpec,
    PortMap,
    ServiceState,
    allocate_ports,
    substitute,
    tail_lines,
)

STOP_GRACE_S = 5.0
# Environment a workload inherits from the provider: enough to find programs and locales, never the provider's
# secrets (its password variables, its wallet directory).
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    ports: PortMap
    log_path: Path


@dataclass
class ProcessWorkload:
    services: dict[str, _Running] = field(default_factory=dict)

    def states(self) -> dict[str, ServiceState]:
        out = {}
        for name, running in self.services.items():
            code = running.process.poll()
            if code is None:
                out[name] = ServiceState(RUNNING)
            else:
                out[name] = ServiceState(EXITED if code == 0 else FAILED, code, f"exited with code {code}")
        return out

    def endpoint(self, service: str) -> tuple[str, int] | None:
        running = self.services.get(service)
        if running is None or not running.ports.ports:
            return None
        return running.ports.host, next(iter(running.ports.ports.values()))

    def logs(self, tail: int) -> str:
        lines = []
        for name, running in self.services.items():
            try:
                text = running.log_path.read_text(errors="replace")
            except OSError:
                continue
            lines += [f"[{name}] {line}" for line in tail_lines(text, tail)]
        return "\n".join(lines)

    def stop(self) -> None:
        for running in self.services.values():
            _signal_group(running.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for running in self.services.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.process.wait(max(0.0, deadline - time.monotonic()))
            _signal_group(running.process, signal.SIGKILL)  # also any child left behind in the group
            running.process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _cpu_list(cpu_millis: int, lease_id: int) -> str:
    """Whole cores for the lease, rotated by lease id so that leases spread over the machine."""
    available = sorted(os.sched_getaffinity(0))
    count = min(len(available), max(1, math.ceil(cpu_millis / 1000)))
    start = lease_id % len(available)
    return ",".join(str(available[(start + i) % len(available)]) for i in range(count))


class ProcessRuntime:
    name = "process"

    def start(self, spec: LaunchSpec) -> ProcessWorkload:
        for service in spec.services:
            if service.command is None:
                raise UNSUPPORTED_MANIFEST(f"service {service.name} names an image ({service.image}); the process "
                                           "runtime runs commands: give a command, or use a provider with docker")
        spec.workdir.mkdir(parents=True, exist_ok=True)
        workload = ProcessWorkload()
        cpus = _cpu_list(spec.need.cpu_millis, spec.lease_id)
        try:
            for service in spec.services:
                assert service.command is not None
                ports = allocate_ports(service)
                env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
                env.update(service.env)
                env.update(ports.env())
                env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.gpus)
                log_path = spec.workdir / f"{service.name}.log"
                command = [sys.executable, "-m", "gridmint.market.provider.runtimes.limits",
                           str(spec.need.memory_mb), cpus, "--", *substitute(service.command, ports.env())]
                with open(log_path, "ab") as log_file:
                    process = subprocess.Popen(command, cwd=spec.workdir, env=env, stdin=subprocess.DEVNULL,
                                               stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
                workload.services[service.name] = _Running(process, ports, log_path)
        except OSError as error:
            workload.stop()
            raise RUNTIME_FAILED(f"cannot start lease {spec.lease_id}: {error}") from None
        return workload
