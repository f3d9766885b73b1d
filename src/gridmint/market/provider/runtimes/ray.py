"""Ray runtime: each service submitted as a job to a Ray cluster through Ray's job API, for GPUs across machines.

**Single-tenant: trusted tenants only.** Ray has no per-tenant authentication or authorisation: any code running on
the cluster can reach its dashboard and job API (it listens on the head node), and through them list, read the logs
of, stop or submit every job, including other leases'; its workers also run as one operating-system user on shared
nodes. A Ray namespace separates names, not access. So a provider on the ray runtime serves only the tenants it names
(``gridmint provider run --runtime ray --trusted-tenant gm1...``): the CLI refuses to start without one, the daemon
bids only on those tenants' orders, and a manifest from anyone else is refused (``provider/11``).

The provider points at the cluster's dashboard address (``http://head:8265``). Ray schedules the job's entrypoint
with the lease's CPUs, GPUs and memory as its resource request, so Ray itself keeps leases from overlapping. The
entrypoint runs on the head node, whose host the provider's proxy forwards to; ports are chosen on the provider's
machine, so the provider runs on the head node (the usual layout for a single provider).
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

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

log = logging.getLogger("gridmint.provider")

STOP_TIMEOUT_S = 15.0
# Ray's job states: PENDING and RUNNING are alive; the rest are final.
_ALIVE = ("PENDING", "RUNNING")


@dataclass
class RayWorkload:
    client: Any  # ray.job_submission.JobSubmissionClient
    jobs: dict[str, tuple[str, PortMap]] = field(default_factory=dict)  # service -> (submission id, ports)

    def states(self) -> dict[str, ServiceState]:
        out = {}
        for name, (job_id, _) in self.jobs.items():
            try:
                status = str(self.client.get_job_status(job_id).value)
            except Exception as error:  # the cluster is unreachable: report, do not guess
                out[name] = ServiceState(FAILED, None, f"Ray cluster unreachable ({error.__class__.__name__})")
                continue
            if status in _ALIVE:
                out[name] = ServiceState(RUNNING, None, status.lower())
            else:
                out[name] = ServiceState(EXITED if status == "SUCCEEDED" else FAILED, None, f"Ray job {status}")
        return out

    def endpoint(self, service: str) -> Endpoint | None:
        entry = self.jobs.get(service)
        return entry[1].first_endpoint() if entry is not None else None

    def logs(self, tail: int) -> str:
        lines = []
        for name, (job_id, _) in self.jobs.items():
            try:
                text = self.client.get_job_logs(job_id)
            except Exception as error:
                log.debug("No logs for Ray job %s: %s", job_id, error)
                continue
            lines += service_log_lines(name, text, tail)
        return "\n".join(lines)

    def stop(self) -> None:
        for job_id, _ in self.jobs.values():
            try:
                self.client.stop_job(job_id)
            except Exception as error:
                log.warning("Could not stop Ray job %s: %s", job_id, error)
                continue
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for job_id, _ in self.jobs.values():
            while time.monotonic() < deadline:
                try:
                    if str(self.client.get_job_status(job_id).value) not in _ALIVE:
                        break
                except Exception:
                    break
                time.sleep(0.2)


class RayRuntime:
    name = "ray"
    single_tenant = True  # see the module's docstring: a job can reach every other job through Ray's job API

    def __init__(self, address: str, client: Any = None) -> None:
        self.address = address
        self.host = urlparse(address).hostname or "127.0.0.1"
        self._client = client

    def _jobs(self) -> Any:
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError:
                raise RUNTIME_FAILED("the ray runtime needs Ray: pip install 'gridmint[ray]'") from None
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as error:
                raise RUNTIME_FAILED(f"cannot reach the Ray cluster at {self.address}: {error}") from None
        return self._client

    def start(self, spec: LaunchSpec) -> RayWorkload:
        for service in spec.services:
            if service.command is None:
                raise UNSUPPORTED_MANIFEST(f"service {service.name} names an image; the ray runtime runs commands")
        workload = RayWorkload(self._jobs())
        try:
            for service in spec.services:
                assert service.command is not None
                ports = allocate_ports(service, self.host)
                env = {**service.env, **ports.env(), "CUDA_VISIBLE_DEVICES": ""} if not spec.need.gpu_units \
                    else {**service.env, **ports.env()}  # with GPUs, Ray sets CUDA_VISIBLE_DEVICES itself
                job_id = workload.client.submit_job(
                    entrypoint=shlex.join(substitute(service.command, ports.env())),
                    submission_id=f"gridmint-lease-{spec.lease_id}-{service.name}-{time.time_ns()}",
                    runtime_env={"env_vars": env},
                    entrypoint_num_cpus=spec.need.cpu_millis / 1000,
                    entrypoint_num_gpus=spec.need.gpu_units,
                    entrypoint_memory=spec.need.memory_mb * 2**20,
                    metadata={"gridmint_lease": str(spec.lease_id), "service": service.name})
                workload.jobs[service.name] = (job_id, ports)
        except Exception as error:
            workload.stop()
            raise RUNTIME_FAILED(f"Ray refused lease {spec.lease_id}: {error}") from None
        return workload
