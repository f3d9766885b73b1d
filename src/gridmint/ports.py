"""Loopback ports for the services GridMint starts on this machine (demo, local networks, leased workloads)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port free now; whoever binds it a moment later fails loudly if something took it meanwhile."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
