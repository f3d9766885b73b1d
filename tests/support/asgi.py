"""An ASGI app served by uvicorn in a thread of the test's own process, for tests that need a real HTTP server."""

from __future__ import annotations

import threading
from typing import Any

from gridmint.ports import free_port
from tests.support.waiting import wait_for


def serve_asgi(app: Any, **options: Any) -> tuple[str, Any, threading.Thread]:
    """``app`` served on a free loopback port: its URL, the server (set ``should_exit`` to stop it) and the
    thread."""
    import uvicorn  # only the tests that serve something pay for the import

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off",
                                           **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start", timeout_s=10, interval_s=0.02)
    return f"http://127.0.0.1:{port}", server, thread
