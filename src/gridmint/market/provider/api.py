"""The provider's HTTP endpoint: the tenant's signed calls, the leases' services behind a reverse proxy, health.

- ``POST /tenant/manifest`` ``{"lease": N, "manifest": {...}}``: start a lease's workload;
- ``POST /tenant/status``   ``{"lease": N}``: the lease's services and their states;
- ``POST /tenant/logs``     ``{"lease": N, "tail": 200}``: the last lines each service wrote.
  Each is a signed request (``client/signing``): the signature is checked before the body is read as JSON, and
  only the lease's tenant on chain is answered. Errors are ``{"error": {"code": "module/N", "name", "message"}}``.
- ``/leases/<N>/<service>/<path>``: any method, forwarded to the service's first port while the lease runs.
- ``GET /health``, ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gridmint.chain.errors import ChainError, register
from gridmint.client.signing import NonceWindow, http_status, verify_request
from gridmint.market.provider.daemon import ACTIVE, MANIFEST_MISMATCH, UNKNOWN_LEASE, UNTRUSTED_TENANT, Provider
from gridmint.market.provider.runtimes.base import UNSUPPORTED_MANIFEST, Endpoint
from gridmint.market.provider.sandbox.network import LeaseNetwork, NamespaceTransport

BAD_REQUEST = register("provider", 7, "bad_request")
NOT_RUNNING = register("provider", 8, "not_running")
UPSTREAM_FAILED = register("provider", 9, "upstream_failed")

MAX_TENANT_BODY = 256 * 1024
MAX_PROXY_BODY = 16 * 1024 * 1024
MAX_LOG_TAIL = 5_000
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
STATUS = {UNKNOWN_LEASE: 404, MANIFEST_MISMATCH: 409, UNSUPPORTED_MANIFEST: 422, NOT_RUNNING: 503,
          UNTRUSTED_TENANT: 403, UPSTREAM_FAILED: 502}


def error_response(error: ChainError) -> JSONResponse:
    status = STATUS.get(error.kind) or http_status(error)
    return JSONResponse({"error": {"code": f"{error.kind.module}/{error.kind.code}", "name": error.kind.name,
                                   "message": error.message}}, status_code=status)


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BAD_REQUEST(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BAD_REQUEST(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class ProviderAPI:
    def __init__(self, provider: Provider, proxy_timeout_s: float = 60.0) -> None:
        self.provider = provider
        self.nonces = NonceWindow()
        self._proxy = httpx.AsyncClient(timeout=proxy_timeout_s, follow_redirects=False)
        self._lease_clients: dict[int, tuple[LeaseNetwork, httpx.AsyncClient]] = {}
        self._ended: list[httpx.AsyncClient] = []
        self.app = Starlette(routes=[
            Route("/tenant/{op:str}", self.tenant, methods=["POST"]),
            Route("/leases/{lease:int}/{service:str}/{path:path}", self.proxy,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ], lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self._proxy.aclose()
        for _, client in self._lease_clients.values():
            await client.aclose()

    async def tenant(self, request: Request) -> Response:
        op = request.path_params["op"]
        try:
            if op not in ("manifest", "status", "logs"):
                raise BAD_REQUEST(f"unknown call /tenant/{op[:32]}; expected manifest, status or logs")
            body = await _read_bounded(request, MAX_TENANT_BODY)
            caller = verify_request(dict(request.headers), body, self.provider.address, self.nonces)  # first
            call = json.loads(body)
            lease_id = call.get("lease") if isinstance(call, dict) else None
            if not isinstance(lease_id, int) or isinstance(lease_id, bool) or lease_id <= 0:
                raise BAD_REQUEST('expected a JSON body {"lease": <lease id>, ...}')
            result = await asyncio.to_thread(self._tenant_call, op, caller.address, lease_id, call)
        except ChainError as error:
            self.provider.metrics.refused.labels(error.kind.name).inc()
            return error_response(error)
        except ValueError:
            return error_response(BAD_REQUEST("the body is not JSON"))
        return JSONResponse(result)

    def _tenant_call(self, op: str, caller: str, lease_id: int, call: dict[str, Any]) -> dict[str, Any]:
        provider = self.provider
        if op == "manifest":
            return provider.status(provider.deliver_manifest(lease_id, caller, call.get("manifest")))
        # Only finding the lease takes the daemon's lock: probing ports and reading logs happen outside it, so a
        # tenant's calls never hold up the chain's blocks, health checks or other tenants.
        with provider.lock:
            lease = provider.lease_for(lease_id, caller)
        if op == "status":
            return provider.status(lease)
        tail = call.get("tail", 200)
        if not isinstance(tail, int) or isinstance(tail, bool) or not 0 <= tail <= MAX_LOG_TAIL:
            raise BAD_REQUEST(f"tail is a number of lines from 0 to {MAX_LOG_TAIL}")
        workload = lease.workload
        return {"lease": lease_id, "logs": workload.logs(tail) if workload else ""}

    async def proxy(self, request: Request) -> Response:
        lease_id, service = request.path_params["lease"], request.path_params["service"]
        lease = self.provider.leases.get(lease_id)
        address = lease.workload.endpoint(service) if lease and lease.state == ACTIVE and lease.workload else None
        await self._forget_ended_leases()
        if address is None:
            self.provider.metrics.proxied.labels("404").inc()
            return error_response(NOT_RUNNING(f"lease {lease_id} runs no service {service[:64]} with a port here"))
        try:
            body = await _read_bounded(request, MAX_PROXY_BODY)
        except ChainError as error:
            return error_response(error)
        client = self._client_for(lease_id, address)
        url = f"http://{address.host}:{address.port}/{request.path_params['path']}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = client.build_request(request.method, url, params=request.query_params, headers=headers,
                                        content=body)
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.HTTPError as error:
            self.provider.metrics.proxied.labels("502").inc()
            return error_response(UPSTREAM_FAILED(f"service {service} did not answer ({error.__class__.__name__})"))
        self.provider.metrics.proxied.labels(str(answer.status_code)).inc()
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code,
                                 headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP},
                                 background=BackgroundTask(answer.aclose))

    def _client_for(self, lease_id: int, endpoint: Endpoint) -> httpx.AsyncClient:
        """The shared client for services on the provider's network; a client of its own for each sandboxed lease
        (its connections are made inside the lease's network, and each lease's ``127.0.0.1`` is another host)."""
        if endpoint.network is None:
            return self._proxy
        known = self._lease_clients.get(lease_id)
        if known is not None and known[0] is endpoint.network:
            return known[1]
        client = httpx.AsyncClient(transport=NamespaceTransport(endpoint.network), timeout=self._proxy.timeout,
                                   follow_redirects=False)
        if known is not None:
            self._ended.append(known[1])
        self._lease_clients[lease_id] = (endpoint.network, client)
        return client

    async def _forget_ended_leases(self) -> None:
        for lease_id in [i for i in self._lease_clients if i not in self.provider.leases
                         or self.provider.leases[i].state != ACTIVE]:
            self._ended.append(self._lease_clients.pop(lease_id)[1])
        while self._ended:
            await self._ended.pop().aclose()

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "provider": self.provider.address,
                             "leases": len(self.provider.running()), "runtime": self.provider.runtime.name})

    async def metrics(self, request: Request) -> Response:
        return Response(self.provider.metrics.render(), media_type="text/plain; version=0.0.4")
