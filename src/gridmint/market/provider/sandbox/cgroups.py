"""A lease's control group: its memory, process, CPU and core limits, and the one place to find and kill all of it.

Every process of a lease joins the lease's group before the tenant's command runs (the launcher writes its own pid
into the group, then becomes bubblewrap), so nothing the workload forks escapes its limits, and stopping a lease
kills exactly the group's members: no pid is guessed, none is reused by mistake.

Two layouts exist. cgroup v2 (one tree, ``cgroup.kill``, ``memory.events``) where the host delegates the needed
controllers to it; otherwise cgroup v1 (one tree per controller, the freezer to stop a fork bomb mid-kill,
``memory.oom_control``). v1 groups nest under the daemon's own group in each tree, so the limits the host put on
the daemon still bound its leases; v2 groups live under ``gridmint-sandbox`` at the tree's root, because v2 lets no
group hold both processes (the daemon) and child groups with controllers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "gridmint-sandbox"
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuset", "freezer")
V2_CONTROLLERS = ("memory", "pids", "cpu", "cpuset")
CPU_PERIOD_US = 100_000
EMPTY_WAIT_S = 10.0


class CgroupUnavailableError(RuntimeError):
    """The host offers no control groups the sandbox can use; the message says what is missing."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpu_millis: int  # CPU time: cpu_millis / 1000 cores' worth per period
    cpus: str  # the cores the lease may run on, e.g. "2,3"


class LeaseCgroup(Protocol):
    """One lease's group, in whichever layout the host has."""

    def procs_files(self) -> list[Path]:
        """Files a process writes its pid into to join the group in every controller."""
        ...

    def members(self) -> list[int]: ...

    def oom_kills(self) -> int:
        """How many processes the kernel killed so far because the group ran out of memory."""
        ...

    def signal_all(self, sig: int) -> None: ...

    def kill_all(self) -> None:
        """SIGKILL every member, including any forked meanwhile, and wait until the group is empty."""
        ...

    def remove(self) -> None: ...


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def _counter(path: Path, name: str) -> int:
    """``name N`` from a flat keyed file such as memory.events or memory.oom_control (0 if absent)."""
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except FileNotFoundError:
        pass
    return 0


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_empty(members: list[Path]) -> None:
    deadline = time.monotonic() + EMPTY_WAIT_S
    while any(_read_pids(path) for path in members) and time.monotonic() < deadline:
        time.sleep(0.01)


def _rmdir(path: Path) -> None:
    for _ in range(50):  # a group whose last member just died may be busy for a moment
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    path.rmdir()


# --- cgroup v1 -------------------------------------------------------------------------------------------------

@dataclass
class V1Cgroup:
    dirs: dict[str, Path]  # controller -> the lease's directory in that controller's tree

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def members(self) -> list[int]:
        return _read_pids(self.dirs["pids"] / "cgroup.procs")

    def oom_kills(self) -> int:
        return _counter(self.dirs["memory"] / "memory.oom_control", "oom_kill")

    def signal_all(self, sig: int) -> None:
        _signal(self.members(), sig)

    def kill_all(self) -> None:
        freezer = self.dirs["freezer"] / "freezer.state"
        _write(freezer, "FROZEN")  # a frozen fork bomb cannot fork while it is being killed
        deadline = time.monotonic() + EMPTY_WAIT_S
        while freezer.read_text().strip() != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.005)
        _signal(_read_pids(self.dirs["freezer"] / "cgroup.procs"), signal.SIGKILL)
        _write(freezer, "THAWED")  # killed processes die only once thawed
        _wait_empty([self.dirs["freezer"] / "cgroup.procs"])

    def remove(self) -> None:
        for directory in self.dirs.values():
            _rmdir(directory)


def _v1_mounts() -> dict[str, Path]:
    """Controller -> where its v1 tree is mounted, from /proc/self/mountinfo."""
    mounts = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) != 2 or not fields[1].startswith("cgroup "):
            continue
        mount_point = Path(fields[0].split()[4])
        for option in fields[1].split()[2].split(","):
            mounts[option] = mount_point
    return mounts


def _own_v1_paths() -> dict[str, str]:
    """Controller -> this process's group path in that tree, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _v1_parent(controller: str, mount: Path, own: str) -> Path:
    parent = mount / own.lstrip("/") / PARENT
    if not parent.exists():
        parent.mkdir(exist_ok=True)
        if controller == "cpuset":  # a v1 cpuset group starts with no cores and no memory nodes: inherit them
            for name in ("cpuset.cpus", "cpuset.mems"):
                _write(parent / name, (parent.parent / name).read_text().strip())
    return parent


def _create_v1(name: str, limits: Limits) -> V1Cgroup:
    mounts, own = _v1_mounts(), _own_v1_paths()
    missing = [c for c in V1_CONTROLLERS if c not in mounts]
    if missing:
        raise CgroupUnavailableError(f"no cgroup v1 tree for {', '.join(missing)}")
    group = V1Cgroup({c: _v1_parent(c, mounts[c], own.get(c, "/")) / name for c in V1_CONTROLLERS})
    for directory in group.dirs.values():
        directory.mkdir(exist_ok=True)
    if group.members():  # left by a daemon that died: its processes are no lease's any more
        group.kill_all()
    memory = group.dirs["memory"]
    _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
    if (memory / "memory.memsw.limit_in_bytes").exists():  # swap counts too where the host accounts it
        _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
    _write(group.dirs["pids"] / "pids.max", str(limits.pids))
    _write(group.dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
    _write(group.dirs["cpu"] / "cpu.cfs_quota_us", str(limits.cpu_millis * CPU_PERIOD_US // 1000))
    cpuset = group.dirs["cpuset"]
    _write(cpuset / "cpuset.cpus", limits.cpus)
    _write(cpuset / "cpuset.mems", (cpuset.parent / "cpuset.mems").read_text().strip())
    return group


# --- cgroup v2 -------------------------------------------------------------------------------------------------

@dataclass
class V2Cgroup:
    dir: Path

    def procs_files(self) -> list[Path]:
        return [self.dir / "cgroup.procs"]

    def members(self) -> list[int]:
        return _read_pids(self.dir / "cgroup.procs")

    def oom_kills(self) -> int:
        return _counter(self.dir / "memory.events", "oom_kill")

    def signal_all(self, sig: int) -> None:
        _signal(self.members(), sig)

    def kill_all(self) -> None:
        _write(self.dir / "cgroup.kill", "1")
        _wait_empty([self.dir / "cgroup.procs"])

    def remove(self) -> None:
        _rmdir(self.dir)


def _enable(directory: Path) -> None:
    wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS)
    _write(directory / "cgroup.subtree_control", wanted)


def _create_v2(root: Path, name: str, limits: Limits) -> V2Cgroup:
    available = set((root / "cgroup.controllers").read_text().split())
    missing = [c for c in V2_CONTROLLERS if c not in available]
    if missing:
        raise CgroupUnavailableError(f"the cgroup v2 tree at {root} does not offer {', '.join(missing)}")
    parent = root / PARENT
    parent.mkdir(exist_ok=True)
    _enable(root)
    _enable(parent)
    group = V2Cgroup(parent / name)
    group.dir.mkdir(exist_ok=True)
    if group.members():
        group.kill_all()
    _write(group.dir / "memory.max", str(limits.memory_bytes))
    if (group.dir / "memory.swap.max").exists():
        _write(group.dir / "memory.swap.max", "0")
    _write(group.dir / "pids.max", str(limits.pids))
    _write(group.dir / "cpu.max", f"{limits.cpu_millis * CPU_PERIOD_US // 1000} {CPU_PERIOD_US}")
    _write(group.dir / "cpuset.cpus", limits.cpus)
    return group


def _v2_root() -> Path | None:
    """Where a v2 tree that offers the memory controller is mounted, if any."""
    for candidate in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        controllers = candidate / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            return candidate
    return None


def create_cgroup(name: str, limits: Limits) -> LeaseCgroup:
    """The lease's group with its limits set, in v2 where the host offers it, in v1 otherwise."""
    root = _v2_root()
    return _create_v2(root, name, limits) if root is not None else _create_v1(name, limits)


def cgroup_problem() -> str | None:
    """Why no lease group can be made on this host, or None."""
    if _v2_root() is not None:
        return None
    missing = [c for c in V1_CONTROLLERS if c not in _v1_mounts()]
    return f"no cgroup v2 memory controller and no v1 tree for {', '.join(missing)}" if missing else None
