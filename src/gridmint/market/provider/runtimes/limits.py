"""Applies a workload's limits to itself, then becomes the workload: ``python -m ...limits MEM_MB CPUS -- cmd...``.

Run as a launcher rather than through ``preexec_fn`` because the daemon starts workloads from worker threads,
where forking and then running Python before ``exec`` may deadlock. Memory is bounded by ``RLIMIT_DATA`` (private
writable memory: the heap and anonymous maps, not shared libraries or GPU mappings); CPU by affinity to whole
cores.
"""

from __future__ import annotations

import os
import resource
import sys


def main(argv: list[str]) -> None:
    memory_mb, cpus, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: limits MEMORY_MB CPU_LIST -- COMMAND...")
    limit = int(memory_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    try:
        os.execvp(command[0], command)  # noqa: S606 - the workload replaces this launcher
    except OSError as error:
        raise SystemExit(f"cannot start {command[0]}: {error.strerror}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
