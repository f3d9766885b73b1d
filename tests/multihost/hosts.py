"""Hosts for tests: one Linux network namespace per host, each with one link (a veth pair) to a switch.

The switch is a namespace of its own holding two bridges, ``br0`` (the network) and ``br1`` (empty until a
partition moves ports onto it); host ``i``'s link is ``h<i>`` on the switch side and ``eth0`` inside the host, with
the address ``<subnet>.<i+1>/24``. Nothing is added to the namespace the test runs in: the subnet exists only inside
the namespaces, and deleting them (``close``, also at interpreter exit, and for namespaces a killed earlier run left
behind) removes every interface and address with them.

Commands run in a host through ``nsenter --net`` (``spawn``, ``run``), which enters the host's network namespace
and nothing else: ``ip netns exec`` would also remount /sys for the command, hiding the machine's cgroup tree from
it (a provider's process runtime needs that tree to sandbox its leases). Python code runs in a host on a thread of
its own that entered the host's namespace with setns(2) (``call``): a network namespace belongs to a thread, so the
test's own threads stay where they are.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gridmint.node.processes import process_alive, stop_process_group

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
PREFIX = "gmt"
T = TypeVar("T")


def can_make_hosts() -> bool:
    """Root, iproute2, and a kernel that lets this process make network namespaces."""
    if os.geteuid() != 0 or not all(any(Path(d, tool).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"))
                                    for tool in ("ip", "nsenter")):
        return False
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _remove_namespace(name: str) -> None:
    """Kill what still runs in ``name`` (processes a test started there), then delete it with its interfaces."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def remove_abandoned() -> None:
    """Namespaces of earlier runs whose process is gone (killed before it could clean up)."""
    if not NETNS_DIR.exists():
        return
    for entry in NETNS_DIR.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)-\w+", entry.name)
        if match and not process_alive(int(match.group(1))):
            _remove_namespace(entry.name)


def _enter(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / namespace, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
    finally:
        os.close(fd)


class Hosts:
    """``count`` hosts on one switch; ``address(i)`` is host i's address on it."""

    def __init__(self, count: int, subnet: str = "10.213.7") -> None:
        remove_abandoned()
        self.count = count
        self.subnet = subnet
        self.tag = f"{PREFIX}{os.getpid()}"
        self.switch = f"{self.tag}-sw"
        self.names = [f"{self.tag}-h{i}" for i in range(count)]
        self._threads: dict[int, ThreadPoolExecutor] = {}
        self._processes: list[subprocess.Popen[bytes]] = []
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        _ip("netns", "add", self.switch)
        for bridge in ("br0", "br1"):
            _ip("-n", self.switch, "link", "add", bridge, "type", "bridge")
            _ip("-n", self.switch, "link", "set", bridge, "up")
        for index, name in enumerate(self.names):
            _ip("netns", "add", name)
            _ip("-n", self.switch, "link", "add", f"h{index}", "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("-n", self.switch, "link", "set", f"h{index}", "master", "br0", "up")
            _ip("-n", name, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def address(self, index: int) -> str:
        return f"{self.subnet}.{index + 1}"

    # --- running things in a host ------------------------------------------------------------------------

    def _inside(self, index: int, command: list[str]) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.names[index]}", *command]

    def spawn(self, index: int, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``command`` in host ``index`` as the leader of its own process group, output to ``log``."""
        with log.open("ab") as out:
            process = subprocess.Popen(self._inside(index, command), stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self._processes.append(process)
        return process

    def run(self, index: int, command: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._inside(index, command), capture_output=True, text=True,
                              timeout=timeout_s)

    def call(self, index: int, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on a thread inside host ``index``'s namespace (sockets it opens are that host's)."""
        thread = self._threads.get(index)
        if thread is None:
            thread = self._threads[index] = ThreadPoolExecutor(1, f"host{index}", _enter, (self.names[index],))
        return thread.submit(function, *args).result()

    def thread(self, index: int, function: Callable[[], None]) -> None:
        """Run ``function`` to its end on the calling thread, moved into host ``index``'s namespace for it (and
        back after): for long loops that must not hold ``call``'s thread of that host."""
        home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        try:
            _enter(self.names[index])
            try:
                function()
            finally:
                if ctypes.CDLL(None, use_errno=True).setns(home, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the test's own namespace")
        finally:
            os.close(home)

    # --- the network's faults ----------------------------------------------------------------------------

    def cut(self, index: int) -> None:
        """Host ``index``'s link down: it can reach no one, and no one it."""
        _ip("-n", self.switch, "link", "set", f"h{index}", "down")

    def mend(self, index: int) -> None:
        _ip("-n", self.switch, "link", "set", f"h{index}", "up")

    def partition(self, hosts: list[int]) -> None:
        """Move ``hosts`` to a bridge of their own: they reach each other and no one else."""
        for index in hosts:
            _ip("-n", self.switch, "link", "set", f"h{index}", "master", "br1")

    def heal(self) -> None:
        for index in range(self.count):
            _ip("-n", self.switch, "link", "set", f"h{index}", "master", "br0")

    # --- cleaning up -------------------------------------------------------------------------------------

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                stop_process_group(process.pid, 10)
        self._processes.clear()
        for thread in self._threads.values():
            thread.shutdown(wait=False, cancel_futures=True)
        self._threads.clear()
        for name in (*self.names, self.switch):
            if (NETNS_DIR / name).exists():
                _remove_namespace(name)
        atexit.unregister(self.close)
