"""Processes a test starts (`python -m gridmint.cli.main ...` with its output in a log file) and the host's
processes it looks for."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.waiting import wait_healthy

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class LoggedProcess:
    """A started process, the URL it serves (``""`` where it serves nothing) and its log file."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def spawn(name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None, url: str = "",
          module: str = "gridmint.cli.main") -> LoggedProcess:
    """``python -m module *args`` run from the repository, ``env`` over this process's environment, its output
    appended to ``<log_dir>/<name>.log``; it is not waited for."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})}, cwd=REPOSITORY)
    return LoggedProcess(name, url, process, log_path)


def start_server(name: str, args: list[str], log_dir: Path, port: int, env: dict[str, str] | None = None,
                 module: str = "gridmint.cli.main", timeout_s: float = 120) -> LoggedProcess:
    """``spawn``, then wait until its /health on loopback ``port`` answers (failing at once if it exits)."""
    started = spawn(name, args, log_dir, env, f"http://127.0.0.1:{port}", module)
    try:
        wait_healthy(started.url, started.process, started.log_path, timeout_s=timeout_s)
    except BaseException:
        started.stop()
        raise
    return started


def processes_of(uid: int) -> list[int]:
    """Pids of the host's processes owned by ``uid`` (a sandboxed lease's user)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found
