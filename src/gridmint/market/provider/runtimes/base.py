"""The seam between the provider daemon and what runs a workload: one protocol, three runtimes.

A runtime starts a lease's services (``start``) and hands back a ``Workload`` that reports each service's state,
where its HTTP port can be reached (for the provider's reverse proxy), the tail of its logs, and stops it with
everything it started. Runtimes are synchronous: the daemon calls them from a worker thread.

Services learn the ports they should listen on from the environment: ``PORT`` (the first declared port) and
``PORT_<declared>`` for each, also substituted where a command says ``${PORT}`` or ``${PORT_8080}``. A runtime that
isolates the network (docker) maps the declared ports instead and sets them to the declared numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gridmint.chain.errors import register
from gridmint.market.deployment import Service
from gridmint.market.provider.inventory import Need
from gridmint.ports import free_port

RUNTIME_FAILED = register("provider", 2, "runtime_failed")
UNSUPPORTED_MANIFEST = register("provider", 3, "unsupported_manifest")

RUNNING, EXITED, FAILED = "running", "exited", "failed"
MAX_LOG_LINES = 10_000


@dataclass(frozen=True)
class LaunchSpec:
    lease_id: int
    services: list[Service]
    need: Need
    gpus: tuple[int, ...]
    workdir: Path


@dataclass(frozen=True)
class ServiceState:
    state: str  # running | exited | failed
    exit_code: int | None = None
    detail: str = ""


@dataclass
class PortMap:
    """Declared port -> the address the service really listens on."""

    host: str
    ports: dict[int, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        values = {f"PORT_{declared}": str(real) for declared, real in self.ports.items()}
        if self.ports:
            values["PORT"] = str(next(iter(self.ports.values())))
        return values


class Workload(Protocol):
    def states(self) -> dict[str, ServiceState]: ...

    def endpoint(self, service: str) -> tuple[str, int] | None: ...

    def logs(self, tail: int) -> str: ...

    def stop(self) -> None: ...


class Runtime(Protocol):
    name: str

    def start(self, spec: LaunchSpec) -> Workload: ...


def is_single_tenant(runtime: Runtime) -> bool:
    """Whether the runtime lets one lease's workload reach another's, so that it may serve trusted tenants only.

    A runtime says so with a class attribute ``single_tenant = True`` (ray); one that isolates leases from each other
    declares ``single_tenant = False`` or nothing (read here rather than required by the protocol, so a runtime that
    predates the attribute keeps its type).
    """
    return bool(getattr(runtime, "single_tenant", False))


def allocate_ports(service: Service, host: str = "127.0.0.1") -> PortMap:
    """Ports free on this machine for each declared port, reached at ``host``."""
    return PortMap(host, {declared: free_port() for declared in service.ports})


def substitute(command: list[str], values: dict[str, str]) -> list[str]:
    """``${NAME}`` in a command's arguments replaced by the port variables (nothing else is expanded)."""
    out = []
    for part in command:
        for name, value in values.items():
            part = part.replace("${" + name + "}", value)
        out.append(part)
    return out


def tail_lines(text: str, tail: int) -> list[str]:
    return text.splitlines()[-max(0, min(tail, MAX_LOG_LINES)):] if tail else []


def first_failure(states: dict[str, ServiceState]) -> tuple[str, ServiceState] | None:
    """The first service that is no longer running, if any (a lease's workload is healthy only while all run)."""
    return next(((name, s) for name, s in states.items() if s.state != RUNNING), None)
