"""The command line that starts one service in its sandbox, and the check that this host can build sandboxes.

The chain of programs, each doing one thing before it becomes the next (``exec``):

1. ``/bin/sh`` (as root) writes its own pid into the lease's control groups: from here on everything is limited;
2. ``setpriv`` drops to the lease's own user id, clears supplementary groups and every capability, and sets
   ``no_new_privs`` (nothing it runs can gain privileges back);
3. ``bwrap`` (bubblewrap, unprivileged) makes new user, PID, mount, IPC, UTS, cgroup and network namespaces, builds
   a root of read-only system folders (``/usr`` and the few files of ``/etc`` programs need), the lease's folder
   (read-write, its own quota'd file system, seen at the lease folder's path), a ``/tmp`` on that same disk, a fresh
   ``/proc`` and a minimal ``/dev`` with only the GPUs the lease rented, clears the environment, and runs the
   command in a new session. The provider's home, wallets, virtualenv, code and other leases do not exist there.

``--die-with-parent`` ties the sandbox to its launcher, and ``--info-fd`` reports the sandbox's pid so the provider
can hold its network namespace. ``--disable-userns``: the workload cannot make a user namespace of its own, in which
it would hold every capability over new mounts and network stacks (the kernel's largest attack surface).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gridmint.market.provider.sandbox.cgroups import cgroup_problem

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# System folders a program may need, bound read-only where they exist (merged-/usr hosts have symlinks instead).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Files under /etc that programs read to run at all, and nothing that describes the host or its users.
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
             "/etc/mime.types", "/etc/ssl/certs", "/etc/ca-certificates")
GPU_SHARED_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own /tmp, a directory on the lease's disk
JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; ' \
               'exec "$@"'


def _system_binds() -> list[str]:
    args = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in ETC_FILES:
        args += ["--ro-bind-try", path, path]
    return args


def _gpu_binds(gpus: tuple[int, ...]) -> list[str]:
    """Device nodes of the rented GPUs only: a user namespace cannot create the others (no mknod)."""
    if not gpus:
        return []
    nodes = [f"/dev/nvidia{index}" for index in gpus] + list(GPU_SHARED_NODES)
    return [arg for node in nodes for arg in ("--dev-bind-try", node, node)]


def sandbox_command(*, lease_id: int, uid: int, gid: int, disk: Path, workdir: Path, env: dict[str, str],
                    command: list[str], gpus: tuple[int, ...], cgroup_procs: list[Path], info_fd: int,
                    block_fd: int) -> list[str]:
    """``disk``: where the lease's file system is mounted on the host; ``workdir``: where the workload sees its
    folder. The sandbox reports its pid on ``info_fd``, then waits on ``block_fd`` before running the command, so
    the provider takes hold of its network namespace while that pid surely is the sandbox's."""
    bwrap = [
        "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
        "--unshare-cgroup-try", "--disable-userns", "--uid", str(uid), "--gid", str(gid),
        "--hostname", f"lease-{lease_id}",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        *_system_binds(), "--proc", "/proc", "--dev", "/dev", *_gpu_binds(gpus),
        # /tmp first, so that a lease folder under the host's /tmp is not hidden by the sandbox's own /tmp. Both
        # sources sit in a folder of root's (see disk.py): the workload cannot swap them for links.
        "--bind", str(disk / "tmp"), SANDBOX_TMP, "--bind", str(disk / "home"), str(workdir),
        "--remount-ro", "/",  # the sandbox's own root (a tmpfs of mount points) takes no writes either
        "--chdir", str(workdir), "--clearenv",
        *[arg for name, value in sorted(env.items()) for arg in ("--setenv", name, value)],
        "--info-fd", str(info_fd), "--block-fd", str(block_fd), "--", *command]
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
               "--no-new-privs", "--"]
    return ["/bin/sh", "-c", JOIN_CGROUPS, "sh", str(len(cgroup_procs)), *map(str, cgroup_procs), *setpriv, *bwrap]


def sandbox_env(service_env: dict[str, str], ports: dict[str, str], workdir: Path) -> dict[str, str]:
    """What a workload's environment holds: its manifest's variables, its ports, and nothing of the provider's."""
    env = {"PATH": SANDBOX_PATH, "HOME": str(workdir), "TMPDIR": SANDBOX_TMP, "LANG": "C.UTF-8"}
    env.update(service_env)
    env.update(ports)
    return env


def host_problems() -> list[str]:
    """What keeps this host from running sandboxes (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the provider must run as root to give each lease its own user id, control group and disk "
                        "(it drops all of that for the workload itself)")
    for tool in ("bwrap", "setpriv", "mkfs.ext4", "mount"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not installed (Debian: apt-get install bubblewrap util-linux e2fsprogs "
                            "mount; `make install` does it)")
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            problems.append("user namespaces are disabled (sysctl user.max_user_namespaces=0)")
    except (OSError, ValueError):
        problems.append("this kernel offers no user namespaces")
    cgroups = cgroup_problem()
    if cgroups:
        problems.append(cgroups)
    return problems
