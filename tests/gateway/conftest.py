"""Fixtures for gateway apps served in the test's own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.asgi import serve_asgi
from tests.support.gateway_app import GatewayBooks, open_books


@pytest.fixture
def books(tmp_path: Path) -> GatewayBooks:
    """The gateway's API keys and ledger, in one database under the test's folder."""
    return open_books(tmp_path)


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
