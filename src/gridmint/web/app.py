"""The explorer's web service: JSON under ``/api`` (read from the node by ``web.data``), and the pages.

Stack: Starlette for a dozen JSON routes, and one static page of plain JavaScript (no build step, no CDN: it
works on a machine without internet and in a headless browser). New blocks appear by polling ``/api/status``
every second, which works the same against a devnode and a CometBFT node.

Every route answers JSON, whatever it is sent: a number out of its range (a netuid above 65,535, a height beyond
int64) is a 400 that says the range before any request reaches the node; what the node refuses is a 404 (or a 400
when the input was malformed), a node that cannot be reached or read is a 502. Never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gridmint.chain.errors import BAD_QUERY, INVALID_ADDRESS, ChainError
from gridmint.chain.query_args import MAX_HEIGHT, MAX_U16
from gridmint.client.chain_client import ChainClient
from gridmint.client.errors import NODE_UNREACHABLE
from gridmint.web.data import Explorer

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("gridmint.web")
# The largest value each numeric path parameter may take: what the chain itself accepts.
NUMBER_LIMITS = {"netuid": MAX_U16, "height": MAX_HEIGHT}
BAD_INPUT = {(BAD_QUERY.module, BAD_QUERY.code), (INVALID_ADDRESS.module, INVALID_ADDRESS.code)}


def make_app(node_url: str) -> Starlette:
    explorer = Explorer(ChainClient(node_url))

    def route(path: str, reader: Callable[..., Any], *params: str) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                args = [_param(request, name) for name in params]
            except ValueError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
            try:
                return JSONResponse(await asyncio.to_thread(reader, *args))
            except ChainError as error:
                malformed = (error.module, error.code) in BAD_INPUT
                status = 400 if malformed else 502 if error.kind == NODE_UNREACHABLE else 404
                return JSONResponse({"error": str(error)}, status_code=status)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
            except Exception as error:  # an answer the explorer cannot read: the node's fault, not the visitor's
                log.exception("%s failed", request.url.path)
                return JSONResponse({"error": f"the node's answer could not be read ({type(error).__name__})"},
                                    status_code=502)

        return Route(path, endpoint, methods=["GET"])

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    return Starlette(routes=[
        route("/api/status", explorer.status),
        route("/api/blocks", explorer.blocks),
        route("/api/block/{height:int}", explorer.block, "height"),
        route("/api/tx/{hash:str}", explorer.tx, "hash"),
        route("/api/account/{address:str}", explorer.account, "address"),
        route("/api/subnets", explorer.subnets),
        route("/api/subnet/{netuid:int}", explorer.metagraph, "netuid"),
        route("/api/subnet/{netuid:int}/history", explorer.history, "netuid"),
        route("/api/subnet/{netuid:int}/commitments", explorer.commitments, "netuid"),
        route("/api/market", explorer.market),
        route("/api/authorities", explorer.authorities),
        route("/api/search", explorer.search, "q"),
        Route("/", index),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])


def _param(request: Request, name: str) -> Any:
    if name in request.path_params:
        value = request.path_params[name]
        limit = NUMBER_LIMITS.get(name)
        if limit is not None and not 0 <= value <= limit:
            raise ValueError(f"{name}: {str(value)[:40]} is out of range; expected a whole number from 0 to {limit}")
        return value
    value = request.query_params.get(name, "")
    if len(value) > 200:
        raise ValueError(f"{name} is longer than 200 characters")
    return value
