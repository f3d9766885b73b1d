"""The explorer's web service: JSON under ``/api`` (read from the node by ``web.data``), and the pages.

Stack: Starlette for a dozen JSON routes, and one static page of plain JavaScript (no build step, no CDN: it
works on a machine without internet and in a headless browser). New blocks appear by polling ``/api/status``
every second, which works the same against a devnode and a CometBFT node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gridmint.chain.errors import ChainError
from gridmint.client.chain_client import ChainClient
from gridmint.web.data import Explorer

STATIC = Path(__file__).parent / "static"


def make_app(node_url: str) -> Starlette:
    explorer = Explorer(ChainClient(node_url))

    def route(path: str, reader: Callable[..., Any], *params: str) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                args = [_param(request, name) for name in params]
                return JSONResponse(await asyncio.to_thread(reader, *args))
            except ChainError as error:
                return JSONResponse({"error": str(error)}, status_code=404)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, status_code=400)

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
        route("/api/market", explorer.market),
        route("/api/authorities", explorer.authorities),
        route("/api/search", explorer.search, "q"),
        Route("/", index),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])


def _param(request: Request, name: str) -> Any:
    if name in request.path_params:
        return request.path_params[name]
    value = request.query_params.get(name, "")
    if len(value) > 200:
        raise ValueError(f"{name} is longer than 200 characters")
    return value
