"""The default runtime: each service a command in the lease's sandbox (see ``gridmint.market.provider.sandbox``).

A lease gets a host user id of its own, a control group (memory, pids, CPU time and cores), a folder that is a
quota'd file system of its own, and for each service a bubblewrap sandbox with new namespaces: the workload sees
read-only system folders, its folder and its ``/tmp``, its own processes, and a network with nothing but its own
loopback. The provider's proxy reaches a service's port by connecting from inside that network
(``sandbox.network``); nothing else can.

Output goes to ``logs/<service>.log`` on the lease's disk (on its quota, out of the workload's sight), through a
descriptor the provider keeps and reads from. Stopping sends
SIGTERM to every process in the lease's group, then SIGKILL to whatever is left, fork bombs included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gridmint.market.deployment import Service
from gridmint.market.provider.runtimes.base import (
    EXITED,
    FAILED,
    RUNNING,
    RUNTIME_FAILED,
    UNSUPPORTED_MANIFEST,
    Endpoint,
    LaunchSpec,
    PortMap,
    ServiceState,
    allocate_ports,
    service_log_lines,
    substitute,
)
from gridmint.market.provider.sandbox.cgroups import LeaseCgroup, Limits, create_cgroup
from gridmint.market.provider.sandbox.disk import LeaseDisk
from gridmint.market.provider.sandbox.identity import LeaseIdentity, claim_identity
from gridmint.market.provider.sandbox.launch import host_problems, sandbox_command, sandbox_env
from gridmint.market.provider.sandbox.network import LeaseNetwork

log = logging.getLogger("gridmint.provider")

STOP_GRACE_S = 5.0
INFO_TIMEOUT_S = 10.0
PIDS_PER_LEASE = 512
DEFAULT_DISK_MB = 1024
LOG_READ_BYTES = 1 << 20  # the most of a log the provider reads to answer a tail
# Where lease disks are mounted on the host: folders every lease user may traverse (the provider's data folder may
# not be), each disk's root open to its own lease only. The image itself stays in the provider's folder.
DISKS_DIR = Path("/run/gridmint/disks")


@dataclass
class _Service:
    process: subprocess.Popen[bytes]  # the launcher; it lives as long as the sandbox
    ports: PortMap
    output: int  # the provider's own descriptor of the log file it created
    network: LeaseNetwork | None


@dataclass
class ProcessWorkload:
    identity: LeaseIdentity
    memory_mb: int
    cgroup: LeaseCgroup | None = None
    disk: LeaseDisk | None = None
    services: dict[str, _Service] = field(default_factory=dict)
    _oom_before: int = 0
    _stopped: bool = False

    def states(self) -> dict[str, ServiceState]:
        out_of_memory = self.cgroup is not None and self.cgroup.oom_kills() > self._oom_before
        out = {}
        for name, service in self.services.items():
            code = service.process.poll()
            if code is None:
                out[name] = ServiceState(RUNNING)
            elif out_of_memory:  # even one that then exited 0: the kernel killed some of the lease's processes
                out[name] = ServiceState(FAILED, code, f"killed: the lease went over its memory limit of "
                                                       f"{self.memory_mb} MB")
            elif code == 0:
                out[name] = ServiceState(EXITED, 0, "exited with code 0")
            else:
                out[name] = ServiceState(FAILED, code, f"exited with code {code}")
        return out

    def endpoint(self, service: str) -> Endpoint | None:
        running = self.services.get(service)
        if running is None or running.network is None:
            return None
        return running.ports.first_endpoint(running.network)

    def logs(self, tail: int) -> str:
        lines = []
        for name, service in self.services.items():
            try:
                size = os.fstat(service.output).st_size
                start = max(0, size - LOG_READ_BYTES)
                text = os.pread(service.output, size - start, start).decode(errors="replace")
            except OSError:
                continue
            lines += service_log_lines(name, text, tail)
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop everything the lease runs and give back what it held; each step runs even if one before failed."""
        if self._stopped:
            return
        self._stopped = True
        steps: list[Callable[[], None]] = [self._end_processes]
        for service in self.services.values():
            if service.network is not None:
                steps.append(service.network.close)
            steps.append(functools.partial(os.close, service.output))
        if self.cgroup is not None:
            steps.append(self.cgroup.remove)
        if self.disk is not None:
            steps.append(self.disk.remove)
        steps.append(self.identity.release)
        failures = []
        for step in steps:
            try:
                step()
            except Exception as error:  # logged and reported below; the remaining steps still run
                log.exception("Stopping a lease: %s failed.", getattr(step, "__name__", step))
                failures.append(error)
        if failures:
            raise RuntimeError(f"the lease stopped with {len(failures)} cleanup failures (see the log)")

    def _end_processes(self) -> None:
        if self.cgroup is not None:
            self.cgroup.signal_all(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for service in self.services.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    service.process.wait(max(0.0, deadline - time.monotonic()))
            self.cgroup.kill_all()
        for service in self.services.values():
            if service.process.poll() is None:
                service.process.kill()
            service.process.wait()


def _cpu_list(cpu_millis: int, lease_id: int) -> str:
    """Whole cores for the lease, rotated by lease id so that leases spread over the machine."""
    available = sorted(os.sched_getaffinity(0))
    count = min(len(available), max(1, math.ceil(cpu_millis / 1000)))
    start = lease_id % len(available)
    return ",".join(str(available[(start + i) % len(available)]) for i in range(count))


def _sandbox_pid(info: int) -> int:
    """The sandbox's pid from bubblewrap's ``--info-fd`` (JSON, written once the namespaces exist)."""
    chunks = []
    deadline = time.monotonic() + INFO_TIMEOUT_S
    while (remaining := deadline - time.monotonic()) > 0:
        if not select.select([info], [], [], remaining)[0]:
            break
        chunk = os.read(info, 4096)
        if not chunk:
            break
        chunks.append(chunk)
        with contextlib.suppress(ValueError):
            return int(json.loads(b"".join(chunks))["child-pid"])
    raise OSError("the sandbox did not start")


class ProcessRuntime:
    name = "process"
    single_tenant = False

    def __init__(self, disk_mb: int = DEFAULT_DISK_MB) -> None:
        self.disk_mb = disk_mb

    @staticmethod
    def problems() -> list[str]:
        return host_problems()

    def start(self, spec: LaunchSpec) -> ProcessWorkload:
        for service in spec.services:
            if service.command is None:
                raise UNSUPPORTED_MANIFEST(f"service {service.name} names an image ({service.image}); the process "
                                           "runtime runs commands: give a command, or use a provider with docker")
        try:
            identity = claim_identity(spec.lease_id)
        except RuntimeError as error:
            raise RUNTIME_FAILED(f"cannot start lease {spec.lease_id}: {error}") from None
        workload = ProcessWorkload(identity, spec.need.memory_mb)
        spec = dataclasses.replace(spec, workdir=spec.workdir.resolve())  # the path the workload sees; absolute
        try:
            limits = Limits(spec.need.memory_mb * 2**20, PIDS_PER_LEASE, spec.need.cpu_millis,
                            _cpu_list(spec.need.cpu_millis, spec.lease_id))
            workload.cgroup = create_cgroup(identity.name, limits)
            workload._oom_before = workload.cgroup.oom_kills()
            image = spec.workdir.with_name(spec.workdir.name + ".img")
            workload.disk = LeaseDisk.create(image, DISKS_DIR / identity.name, self.disk_mb, identity.uid,
                                             identity.gid)
            for service in spec.services:
                workload.services[service.name] = self._start_service(spec, service, workload)
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            workload.stop()
            raise RUNTIME_FAILED(f"cannot start lease {spec.lease_id}: {error}") from None
        return workload

    def _start_service(self, spec: LaunchSpec, service: Service, workload: ProcessWorkload) -> _Service:
        assert service.command is not None and workload.cgroup is not None and workload.disk is not None
        disk = workload.disk.mountpoint
        ports = allocate_ports(service)
        env = sandbox_env(service.env, ports.env(), spec.workdir)
        output = os.open(workload.disk.logs / f"{service.name}.log", os.O_RDWR | os.O_APPEND | os.O_CREAT
                         | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        info_read, info_write = os.pipe2(os.O_CLOEXEC)
        block_read, block_write = os.pipe2(os.O_CLOEXEC)
        try:
            command = sandbox_command(lease_id=spec.lease_id, uid=workload.identity.uid,
                                      gid=workload.identity.gid, disk=disk, workdir=spec.workdir, env=env,
                                      command=substitute(service.command, ports.env()), gpus=spec.gpus,
                                      cgroup_procs=workload.cgroup.procs_files(), info_fd=info_write,
                                      block_fd=block_read)
            process = subprocess.Popen(command, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                       stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       pass_fds=(info_write, block_read), start_new_session=True)
            for fd in (info_write, block_read):
                os.close(fd)
            info_write = block_read = -1
            network = None
            with contextlib.suppress(OSError):  # a sandbox that failed at once has no network to hold
                network = LeaseNetwork(_sandbox_pid(info_read))
            os.write(block_write, b"1")  # the namespace is held: the command may run
        except BaseException:
            os.close(output)
            raise
        finally:
            for fd in (info_read, info_write, block_read, block_write):
                if fd >= 0:
                    os.close(fd)
        return _Service(process, ports, output, network)
