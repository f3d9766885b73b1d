"""Lease control groups: v1 for real on this host (its controllers are v1), v2 against a tree laid out like one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gridmint.market.provider.sandbox import cgroups
from gridmint.market.provider.sandbox.cgroups import Limits, V2Cgroup, create_cgroup
from tests.support.waiting import wait_for

LIMITS = Limits(memory_bytes=64 * 2**20, pids=32, cpu_millis=500, cpus="0")


@pytest.mark.skipif(cgroups._v2_root() is not None, reason="this host offers cgroup v2 controllers")
def test_a_v1_group_sets_every_limit_and_kills_all_its_members() -> None:
    group = create_cgroup("test-v1-group", LIMITS)
    try:
        assert isinstance(group, cgroups.V1Cgroup)
        assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text().strip() == str(64 * 2**20)
        assert (group.dirs["pids"] / "pids.max").read_text().strip() == "32"
        assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (group.dirs["cpuset"] / "cpuset.cpus").read_text().strip() == "0"
        join = 'for f in "$@"; do echo $$ > "$f"; done; sleep 600 & sleep 600 & wait'
        process = subprocess.Popen(["/bin/sh", "-c", join, "sh", *map(str, group.procs_files())])
        wait_for(lambda: len(group.members()) >= 3, "the shell and both sleeps to join", timeout_s=10, interval_s=0.01)
        assert len(group.members()) == 3  # the shell and both sleeps, all inside
        group.kill_all()
        assert group.members() == [] and process.wait(10) == -9
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs.values())


def test_a_v2_group_writes_its_limits_and_kills_through_cgroup_kill(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", root)

    real_mkdir = Path.mkdir

    def mkdir_like_the_kernel(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, exist_ok=True)
        for name in ("cgroup.procs", "memory.events", "cgroup.kill"):
            if not (self / name).exists():
                (self / name).write_text("")

    monkeypatch.setattr(Path, "mkdir", mkdir_like_the_kernel)
    group = create_cgroup("u1000000007", LIMITS)
    assert isinstance(group, V2Cgroup) and group.dir == root / "gridmint-sandbox" / "u1000000007"
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +cpuset"
    assert (root / "gridmint-sandbox" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +cpuset"
    assert (group.dir / "memory.max").read_text() == str(64 * 2**20)
    assert (group.dir / "pids.max").read_text() == "32"
    assert (group.dir / "cpu.max").read_text() == "50000 100000"
    assert (group.dir / "cpuset.cpus").read_text() == "0"
    (group.dir / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert group.oom_kills() == 1
    group.kill_all()
    assert (group.dir / "cgroup.kill").read_text() == "1"
