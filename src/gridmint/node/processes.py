"""Stopping the long-running processes that ``gridmint net`` and ``gridmint up`` start on this machine, and
reading what /proc says about a process.

Each is started as the leader of its own session and process group (``start_new_session=True``), so that it
outlives the command that started it and so that stopping it also stops whatever it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a child that exited is reaped here, and a zombie counts as gone."""
    with contextlib.suppress(ChildProcessError):  # not our child: the checks below still see it
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far. Raises OSError when it is gone."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may itself hold spaces or parentheses), from
    the state on: see proc(5), whose field 3 is index 0 here."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def stop_process_group(pid: int, timeout_s: float) -> bool:
    """SIGTERM the process group ``pid`` leads, give its leader ``timeout_s`` to exit, then SIGKILL whatever is
    left in the group (the leader, or a child that outlived it). False when it was not running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
