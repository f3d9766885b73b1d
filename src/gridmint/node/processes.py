"""Stopping the long-running processes that ``gridmint net`` and ``gridmint up`` start on this machine.

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
    try:  # the state is the first field after the command name, which may itself hold spaces or parentheses
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


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
