"""A lease's folder as a file system of its own: a sparse ext4 image, loop-mounted, so its size is a hard quota.

The image lives in the provider's folder, outside the sandbox's view. A workload that fills its folder (or its
``/tmp``, on the same file system) gets ``ENOSPC`` and nobody else notices. Mounted ``nosuid,nodev``.

Layout: the file system's root belongs to root (``0711``), so the lease cannot rename or replace what is in it:
``home/`` and ``tmp/`` (the lease's, ``0700``) are what the sandbox binds as the lease folder and ``/tmp``, and
``logs/`` (root's) holds the services' output, which the workload cannot see or touch. Were the root the lease's, a
workload could swap ``tmp`` for a symlink and have the next service's sandbox bind whatever it points to.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOOL_TIMEOUT_S = 30


class DiskUnavailableError(RuntimeError):
    pass


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise DiskUnavailableError(f"{command[0]} failed: {(result.stderr or result.stdout).strip()[:300]}")


def _is_mount(path: Path) -> bool:
    return os.path.ismount(path)


@dataclass
class LeaseDisk:
    image: Path
    mountpoint: Path

    @classmethod
    def create(cls, image: Path, mountpoint: Path, size_mb: int, uid: int, gid: int) -> LeaseDisk:
        disk = cls(image, mountpoint)
        disk.remove()  # what a daemon that died may have left
        image.parent.mkdir(parents=True, exist_ok=True)
        mountpoint.parent.mkdir(parents=True, exist_ok=True)
        for folder in (mountpoint.parent, mountpoint.parent.parent):
            # Traversable by lease users (to reach their own disk), listable by nobody.
            os.chmod(folder, 0o711)  # noqa: S103
        mountpoint.mkdir(mode=0o700, exist_ok=True)
        with open(disk.image, "wb") as file:  # sparse: blocks are allocated only as the lease writes
            file.truncate(size_mb * 2**20)
        os.chmod(disk.image, 0o600)
        try:
            # No journal and no reserved blocks: a scratch disk for one lease, deleted when the lease ends.
            _run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-E", "nodiscard,root_owner=0:0",
                 str(disk.image))
            _run("mount", "-o", "loop,nosuid,nodev", str(disk.image), str(mountpoint))
            os.chmod(mountpoint, 0o711)  # noqa: S103 - the lease's user passes through to its own folders only
            (mountpoint / "lost+found").rmdir()
            for folder in (disk.home, disk.tmp):
                folder.mkdir(mode=0o700)
                os.chown(folder, uid, gid)
            disk.logs.mkdir(mode=0o700)
        except BaseException:
            disk.remove()
            raise
        return disk

    @property
    def home(self) -> Path:
        """The lease folder, as the workload sees it."""
        return self.mountpoint / "home"

    @property
    def tmp(self) -> Path:
        return self.mountpoint / "tmp"

    @property
    def logs(self) -> Path:
        return self.mountpoint / "logs"

    def remove(self) -> None:
        if _is_mount(self.mountpoint):
            # Lazy: a process that still holds a file open (it is being killed) does not keep the quota alive.
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, timeout=TOOL_TIMEOUT_S,
                           check=False)
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()
        with contextlib.suppress(OSError):
            self.mountpoint.rmdir()
