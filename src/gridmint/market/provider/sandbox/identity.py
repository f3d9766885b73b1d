"""A host user id of its own for each running lease, claimed with a lock so two daemons never hand out the same one.

The uid is ``FIRST_UID + lease id`` when free (easy to read in ``ps``), else the next free one. A claim is an
``flock`` on ``/run/gridmint/claims/<uid>.lock`` held for the lease's life: the kernel drops it when the daemon
exits, however it exits, so a crashed daemon leaves no stale claim. The uid owns nothing on the host but the
lease's own folder, so even outside its namespaces a workload could not read, signal or trace anyone else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

CLAIMS_DIR = Path("/run/gridmint/claims")
FIRST_UID = 1_000_000_000  # far above the ids of people, services and the usual subordinate-id ranges
UID_SPAN = 1_000_000_000
MAX_TRIES = 4096


class NoFreeIdentityError(RuntimeError):
    pass


@dataclass
class LeaseIdentity:
    uid: int
    _lock_fd: int

    @property
    def gid(self) -> int:
        return self.uid

    @property
    def name(self) -> str:
        """The name of the lease's control group (unique while claimed)."""
        return f"u{self.uid}"

    def release(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1


def claim_identity(lease_id: int, claims_dir: Path = CLAIMS_DIR) -> LeaseIdentity:
    claims_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for step in range(MAX_TRIES):
        uid = FIRST_UID + (lease_id + step) % UID_SPAN
        fd = os.open(claims_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return LeaseIdentity(uid, fd)
    raise NoFreeIdentityError(f"no free sandbox user id near {FIRST_UID + lease_id % UID_SPAN}")
