"""Stopping detached process groups: a polite stop, a process that ignores SIGTERM, what a leader started (even
what ignores SIGTERM), and a pid that is already gone; and a process's CPU time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridmint.node.processes import cpu_seconds, process_alive, stop_process_group
from tests.support.waiting import wait_for


def detached(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def wait_for_file(path: Path, timeout_s: float = 10) -> None:
    wait_for(path.exists, f"{path} to appear", timeout_s, interval_s=0.02)


def read_pid(path: Path, timeout_s: float = 10) -> int:
    """The pid another process writes to ``path``: the file exists before its text is written, so wait for both."""
    wait_for(lambda: path.exists() and path.read_text().strip(), f"{path} to hold a pid", timeout_s, interval_s=0.02)
    return int(path.read_text())


def test_a_process_that_honours_sigterm_is_stopped_and_reaped(tmp_path: Path) -> None:
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    process = detached("import pathlib, signal, sys, time; "
                       f"signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path({str(stopped)!r}).touch(), "
                       f"sys.exit(0))); pathlib.Path({str(ready)!r}).touch(); time.sleep(60)")
    wait_for_file(ready)
    assert stop_process_group(process.pid, timeout_s=10)
    assert stopped.exists()  # it was asked with SIGTERM and left on its own
    assert not process_alive(process.pid)


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    process = detached("import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)")
    wait_for_file(ready)
    assert stop_process_group(process.pid, timeout_s=0.5)
    process.wait(timeout=5)  # reap it: it is this test's child
    assert not process_alive(process.pid)  # SIGTERM was ignored, so only the SIGKILL after it can have stopped it


def test_what_the_leader_started_stops_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    leader = detached("import subprocess, sys, time, pathlib; "
                      "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                      f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid)); time.sleep(60)")
    child = read_pid(pid_file)
    assert stop_process_group(leader.pid, timeout_s=10)
    # The child is init's to reap, not ours.
    wait_for(lambda: not process_alive(child), "the leader's child to be gone", timeout_s=5, interval_s=0.02)


def test_a_child_that_ignores_sigterm_does_not_outlive_its_leader(tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    leader = detached("import subprocess, sys, time, pathlib; "
                      f"child = subprocess.Popen([sys.executable, '-c', {stubborn!r}]); "
                      f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid)); time.sleep(60)")
    child = read_pid(pid_file)
    time.sleep(0.3)  # the child has set its handler
    assert stop_process_group(leader.pid, timeout_s=10)
    wait_for(lambda: not process_alive(child), "the stubborn child to be gone", timeout_s=5, interval_s=0.02)


def test_a_pid_that_is_gone_is_reported_as_not_running() -> None:
    process = detached("pass")
    process.wait(timeout=10)
    assert not process_alive(process.pid)
    assert not stop_process_group(process.pid, timeout_s=1)


def test_cpu_seconds_grows_while_a_process_works_and_fails_once_it_is_gone() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) >= before + 0.1
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(OSError):
        cpu_seconds(child.pid)
