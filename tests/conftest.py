"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.asgi import serve_asgi
from tests.support.chain import Chain, make_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test downloads a model: the ones it needs ship or are cached


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    app = make_app(tmp_path)
    yield Chain(app)
    app.store.close()


@pytest.fixture(params=["devnode", "cometbft"])
def node_kind(request: pytest.FixtureRequest) -> str:
    """Run a live test against the devnode and against a 4-authority CometBFT network (``make cometbft``)."""
    return str(request.param)


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(app, **uvicorn_options)``: the URL of ``app`` served on loopback; every server started this way
    stops when the test ends."""
    running = []

    def start(app: Any, **options: Any) -> str:
        url, server, thread = serve_asgi(app, **options)
        running.append((server, thread))
        return url

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(timeout=10)
