"""A uvicorn server for processes that still have work to do once serving stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator

import uvicorn

log = logging.getLogger("gridmint")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM once it has shut down, and the default action ends the process on the spot:
    before a devnode closes its stores, before a provider stops the workloads it runs. Here the signals only ask
    the server to stop; ``serve()`` returns and the caller's own shutdown runs."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._stop_on_signal, sig)
        try:
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    def _stop_on_signal(self, sig: int) -> None:
        log.info("Received %s; shutting down.", signal.Signals(sig).name)
        self.should_exit = True
