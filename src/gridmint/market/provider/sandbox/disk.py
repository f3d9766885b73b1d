"""A lease's folder as a file system of its own: a sparse ext4 image, loop-mounted, so its size is a hard quota.

The image lives in the provider's folder, outside the sandbox's view; only its mount is bound in. A workload that fills
its folder (or its ``/tmp``, which is a directory on the same file system) gets ``ENOSPC`` and nobody else notices.
Mounted ``nosuid,nodev``; the root of the file system belongs to the lease's user id and nobody else may enter it.
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
            _run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-E", "nodiscard,root_owner="
                 f"{uid}:{gid}", str(disk.image))
            _run("mount", "-o", "loop,nosuid,nodev", str(disk.image), str(mountpoint))
            os.chmod(mountpoint, 0o700)
            (mountpoint / "lost+found").rmdir()
            tmp = mountpoint / ".tmp"
            tmp.mkdir(mode=0o700)
            os.chown(tmp, uid, gid)
        except BaseException:
            disk.remove()
            raise
        return disk

    def remove(self) -> None:
        if _is_mount(self.mountpoint):
            # Lazy: a process that still holds a file open (it is being killed) does not keep the quota alive.
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, timeout=TOOL_TIMEOUT_S,
                           check=False)
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()
        with contextlib.suppress(OSError):
            self.mountpoint.rmdir()
