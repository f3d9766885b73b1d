"""Docker runtime: each service a hardened container through the Docker SDK, where an engine is reachable.

What a lease's containers get, and why:

- **No privileges.** Every capability dropped (``cap_drop=ALL``), ``no-new-privileges`` (setuid binaries in the image
  gain nothing), never privileged, private PID and IPC namespaces, the engine's default seccomp and AppArmor
  profiles. An image whose entrypoint needs a capability (``chown``, ``gosu``, binding with ``CAP_NET_BIND_SERVICE``
  on an engine that does not lower the unprivileged port floor) does not run here.
- **Limits that hold.** The lease's CPU quota (``nano_cpus``), its memory with no swap on top (``memswap_limit`` equal
  to ``mem_limit``), a pids limit (a fork bomb stops there) and an open-files limit. Disk is not bounded: the local
  volume driver has no quota, so the provider's Docker data root should sit on a file system it can afford to fill.
- **A read-only root, always.** Writable are only ``/tmp`` (a tmpfs, charged to the lease's memory) and ``/work`` (the
  working directory): a Docker volume of the lease's own, created with the lease and removed with it. A volume rather
  than the lease's folder on the host because a container's root (uid 0 without user-namespace remapping) could
  otherwise leave root-owned setuid files in the provider's file system. A manifest whose image writes elsewhere
  fails its start and the tenant sees the image's own error in the logs.
- **Its own network.** ``gridmint-lease-<id>``, a user-defined bridge created with the lease and ``internal`` (no route
  out of its subnet: not the internet, not the host's private ranges, not other leases' networks), removed when the
  lease stops or its start fails halfway. Docker publishes no ports on an internal network (moby/moby#36174), so no
  host port is opened at all: the provider's proxy reaches each declared port at the container's address on the
  lease's network (reachable from the host on Docker 26 and later, moby/moby#47356). The host's loopback services
  are out of reach; a host service listening on *all* addresses answers on the bridge's address, so providers drop
  new inbound connections from the lease bridges, which are named ``gml-<lease>`` on the host:
  ``iptables -I INPUT -i gml-+ -m conntrack --ctstate NEW -j DROP``.
- **GPUs only as rented.** A device request for the leased indices, none when the lease has no GPU, and
  ``NVIDIA_VISIBLE_DEVICES`` always set by the runtime (the leased indices, or ``void``): an image's or a manifest's
  own value (``all`` in the CUDA images) would otherwise widen access on engines whose default runtime is NVIDIA's.

Services see their declared ports as ``PORT``/``PORT_<n>`` set to the declared numbers. Stopping removes the
containers (with their anonymous volumes), then the lease's network and volume. The SDK is optional
(``pip install docker``); the engine is passed in by tests, which use a fake at this seam since these machines run
no Docker engine.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from gridmint.market.provider.runtimes.base import (
    EXITED,
    FAILED,
    RUNNING,
    RUNTIME_FAILED,
    Endpoint,
    LaunchSpec,
    PortMap,
    ServiceState,
    service_log_lines,
)

log = logging.getLogger("gridmint.provider")

STOP_TIMEOUT_S = 5
DEFAULT_IMAGE = "python:3.11-slim"
PIDS_LIMIT = 512  # processes and threads per container: enough for a server's workers, not for a fork bomb
OPEN_FILES = 8_192
WORKDIR = "/work"
CONTAINER_TMP = "/tmp"  # noqa: S108 - the container's own /tmp, a private tmpfs, not the host's
BRIDGE_PREFIX = "gml-"  # host interface names of the lease networks, for the provider's firewall rule


def lease_resource_name(lease_id: int) -> str:
    """The name of a lease's network and volume (its containers add ``-<service>``)."""
    return f"gridmint-lease-{lease_id}"


def bridge_name(lease_id: int) -> str:
    """The lease network's interface on the host (Linux allows 15 characters: lease ids up to 11 digits)."""
    return f"{BRIDGE_PREFIX}{lease_id}"


@dataclass
class DockerWorkload:
    containers: dict[str, tuple[Any, PortMap]] = field(default_factory=dict)
    network: Any = None
    volume: Any = None

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

    def endpoint(self, service: str) -> Endpoint | None:
        entry = self.containers.get(service)
        return entry[1].first_endpoint() if entry is not None else None

    def logs(self, tail: int) -> str:
        lines = []
        for name, (container, _) in self.containers.items():
            text = container.logs(tail=tail).decode(errors="replace")
            lines += service_log_lines(name, text, tail)
        return "\n".join(lines)

    def stop(self) -> None:
        """Remove everything the lease had, each part even when another could not be removed (it is logged)."""
        for name, (container, _) in self.containers.items():
            _attempt(f"stop container {name}", lambda c=container: c.stop(timeout=STOP_TIMEOUT_S))
            _attempt(f"remove container {name}", lambda c=container: c.remove(force=True, v=True))
        # The network and the volume go last: the engine refuses to remove them while a container uses them.
        if self.network is not None:
            _attempt("remove the lease's network", self.network.remove)
        if self.volume is not None:
            _attempt("remove the lease's volume", lambda: self.volume.remove(force=True))


def _attempt(what: str, action: Any) -> None:
    try:
        action()
    except Exception as error:  # one stuck part must not leave the others running
        log.warning("Docker could not %s: %s", what, error)


class DockerRuntime:
    name = "docker"
    single_tenant = False

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
        name = lease_resource_name(spec.lease_id)
        labels = {"gridmint.lease": str(spec.lease_id)}
        try:
            workload.network = engine.networks.create(
                name, driver="bridge", internal=True, labels=labels,
                options={"com.docker.network.bridge.name": bridge_name(spec.lease_id)})
            workload.volume = engine.volumes.create(name=name, driver="local", labels=labels)
            for service in spec.services:
                container = engine.containers.run(
                    service.image or DEFAULT_IMAGE, service.command, detach=True, name=f"{name}-{service.name}",
                    environment=_environment(service.env, service.ports, spec.gpus), labels=labels,
                    network=name, working_dir=WORKDIR, volumes={name: {"bind": WORKDIR, "mode": "rw"}},
                    read_only=True, tmpfs={CONTAINER_TMP: f"rw,nosuid,nodev,size={spec.need.memory_mb}m"},
                    cap_drop=["ALL"], security_opt=["no-new-privileges:true"], privileged=False, ipc_mode="private",
                    pids_limit=PIDS_LIMIT, ulimits=[{"name": "nofile", "soft": OPEN_FILES, "hard": OPEN_FILES}],
                    nano_cpus=spec.need.cpu_millis * 1_000_000, mem_limit=f"{spec.need.memory_mb}m",
                    memswap_limit=f"{spec.need.memory_mb}m", device_requests=_gpu_requests(spec.gpus))
                workload.containers[service.name] = (container, PortMap("", {}))  # held first: stop() removes it
                if service.ports:  # no host port: the declared ports at the container's own address
                    ports = PortMap(_address(container, name), {p: p for p in service.ports})
                    workload.containers[service.name] = (container, ports)
        except Exception as error:
            workload.stop()
            raise RUNTIME_FAILED(f"Docker refused lease {spec.lease_id}: {error}") from None
        return workload


def _environment(manifest_env: dict[str, str], ports: list[int], gpus: tuple[int, ...]) -> dict[str, str]:
    env = {**manifest_env, **{f"PORT_{p}": str(p) for p in ports}}
    if ports:
        env["PORT"] = str(ports[0])
    # "void": the NVIDIA runtime then mounts no GPU (and no driver) even where the image asks for all of them.
    env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus) if gpus else "void"
    return env


def _gpu_requests(gpus: tuple[int, ...]) -> list[dict[str, Any]]:
    if not gpus:
        return []
    return [{"Driver": "nvidia", "DeviceIDs": [str(g) for g in gpus], "Capabilities": [["gpu"]]}]


def _address(container: Any, network: str) -> str:
    """The container's address on the lease's network, where the proxy and the health checks reach it."""
    container.reload()
    address = container.attrs.get("NetworkSettings", {}).get("Networks", {}).get(network, {}).get("IPAddress")
    if not address:
        raise RuntimeError(f"the container has no address on network {network}")
    return str(address)
