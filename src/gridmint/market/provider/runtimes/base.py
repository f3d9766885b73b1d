"""The seam between the provider daemon and what runs a workload: one protocol, three runtimes.

A runtime starts a lease's services (``start``) and hands back a ``Workload`` that reports each service's state,
where its HTTP port can be reached (for the provider's reverse proxy), the tail of its logs, and stops it with
everything it started. Runtimes are synchronous: the daemon calls them from a worker thread.

Services learn the ports they should listen on from the environment: ``PORT`` (the first declared port) and
``PORT_<declared>`` for each, also substituted where a command says ``${PORT}`` or ``${PORT_8080}``. A runtime that
isolates the network (docker) maps the declared ports instead and sets them to the declared numbers.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gridmint.chain.errors import register
from gridmint.market.deployment import Service
from gridmint.market.provider.inventory import Need
from gridmint.market.provider.sandbox.network import LeaseNetwork
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


@dataclass(frozen=True)
class Endpoint:
    """Where a service listens: an address on the provider's network, or on a lease's own network namespace."""

    host: str
    port: int
    network: LeaseNetwork | None = None

    def connect(self, timeout: float) -> socket.socket:
        if self.network is not None:
            return self.network.connect(self.host, self.port, timeout)
        connection: socket.socket = socket.create_connection((self.host, self.port), timeout=timeout)
        return connection

    def answers(self, timeout: float = 1.0) -> bool:
        """Whether the service accepts a connection now."""
        try:
            connection = self.connect(timeout)
        except OSError:
            return False
        connection.close()
        return True


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

    def first_endpoint(self, network: LeaseNetwork | None = None) -> Endpoint | None:
        """Where the first declared port is reached (the one the provider's proxy forwards to); None when the
        service declares no port."""
        if not self.ports:
            return None
        return Endpoint(self.host, next(iter(self.ports.values())), network)


class Workload(Protocol):
    def states(self) -> dict[str, ServiceState]: ...

    def endpoint(self, service: str) -> Endpoint | None: ...

    def logs(self, tail: int) -> str: ...

    def stop(self) -> None: ...


class Runtime(Protocol):
    name: str
    single_tenant: bool  # True: it cannot keep tenants apart, so it serves trusted tenants only (ray)

    def start(self, spec: LaunchSpec) -> Workload: ...


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


def service_log_lines(service: str, text: str, tail: int) -> list[str]:
    """The last ``tail`` lines of one service's output, each marked ``[service]``, so that the services of a lease
    can be told apart in its logs, which put their outputs one after another."""
    return [f"[{service}] {line}" for line in tail_lines(text, tail)]


def first_failure(states: dict[str, ServiceState]) -> tuple[str, ServiceState] | None:
    """The first service that is no longer running, if any (a lease's workload is healthy only while all run)."""
    return next(((name, s) for name, s in states.items() if s.state != RUNNING), None)
