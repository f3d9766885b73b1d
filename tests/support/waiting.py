"""Polling until something holds, with a deadline: the one way tests wait for servers, blocks and ledgers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 60, interval_s: float = 0.1,
             detail: Callable[[], str] | None = None) -> Any:
    """``condition()``'s first truthy value, polled every ``interval_s``; fails the test after ``timeout_s``,
    saying ``what`` it waited for and, where given, ``detail()`` (a log's tail, the state it saw)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}" + (f":\n{detail()}" if detail else ""))


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None = None, log: Path | None = None,
                 timeout_s: float = 60, path: str = "/health") -> None:
    """Until ``url`` + ``path`` answers 200; fails at once if ``process`` exits meanwhile (quoting ``log``)."""
    import httpx  # only the tests that start servers pay for the import

    def log_tail() -> str:
        return f":\n{log.read_text(errors='replace')[-3000:]}" if log else ""

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{url}: the process exited with {process.returncode}{log_tail()}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up within {timeout_s:g} s{log_tail()}")
