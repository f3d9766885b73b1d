"""The sandbox's command line: who joins the control groups, who drops privileges, what bubblewrap shows."""

from __future__ import annotations

from pathlib import Path

from gridmint.market.provider.sandbox.launch import sandbox_command, sandbox_env


def _command(gpus: tuple[int, ...] = ()) -> list[str]:
    return sandbox_command(lease_id=7, uid=1_000_000_007, gid=1_000_000_007, disk=Path("/run/gridmint/disks/u7"),
                           workdir=Path("/data/leases/7"), env={"PORT": "8080", "A": "b"},
                           command=["python3", "-c", "pass"], gpus=gpus,
                           cgroup_procs=[Path("/cg/memory/u7/cgroup.procs"), Path("/cg/pids/u7/cgroup.procs")],
                           info_fd=5, block_fd=6)


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_the_shell_joins_every_group_then_setpriv_drops_to_the_leases_user_before_bubblewrap() -> None:
    args = _command()
    assert args[:6] == ["/bin/sh", "-c", args[2], "sh", "2", "/cg/memory/u7/cgroup.procs"]
    setpriv = args.index("setpriv")
    assert args[setpriv:setpriv + 7] == ["setpriv", "--reuid=1000000007", "--regid=1000000007", "--clear-groups",
                                         "--inh-caps=-all", "--no-new-privs", "--"]
    assert args[setpriv + 7] == "bwrap" and args[-4:] == ["--", "python3", "-c", "pass"]


def test_bubblewrap_unshares_everything_and_clears_the_environment_before_setting_the_leases() -> None:
    args = _command()
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                 "--die-with-parent", "--new-session"):
        assert flag in args
    assert args.index("--clearenv") < args.index("--setenv")
    assert _pairs(args, "--setenv") == ["A", "PORT"]
    # The lease's disk is the only writable place, seen at the lease folder's path and as /tmp.
    assert _pairs(args, "--bind") == ["/run/gridmint/disks/u7/tmp", "/run/gridmint/disks/u7/home"]
    assert "--disable-userns" in args and _pairs(args, "--info-fd") == ["5"] and _pairs(args, "--block-fd") == ["6"]
    assert all(source.startswith(("/usr", "/etc/")) or source in ("/bin", "/sbin", "/lib", "/lib64", "/lib32",
                                                                   "/libx32")
               for source in _pairs(args, "--ro-bind") + _pairs(args, "--ro-bind-try"))


def test_only_the_rented_gpus_device_nodes_are_in_the_sandbox() -> None:
    assert "--dev-bind-try" not in _command()
    nodes = _pairs(_command((2, 5)), "--dev-bind-try")
    assert "/dev/nvidia2" in nodes and "/dev/nvidia5" in nodes and "/dev/nvidiactl" in nodes
    assert not {f"/dev/nvidia{i}" for i in (0, 1, 3, 4, 6, 7)} & set(nodes)


def test_the_workload_environment_holds_nothing_of_the_providers() -> None:
    env = sandbox_env({"GREETING": "hi"}, {"PORT": "9"}, Path("/data/leases/7"))
    assert env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/data/leases/7", "TMPDIR": "/tmp",
                   "LANG": "C.UTF-8", "GREETING": "hi", "PORT": "9"}
