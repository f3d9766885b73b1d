"""Loopback ports for the servers a test starts, chosen before they bind."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from gridmint.ports import free_port

_HANDED_OUT: set[int] = set()  # ports chosen in this process and maybe not bound yet


def unused_port() -> int:
    """A loopback port free now and not handed out before by this process: ports are chosen before the servers
    bind them, and two ``free_port()`` calls in a row can return the same one (a gateway once got the port chosen
    for a miner, whose health check then reached the gateway)."""
    while True:
        port = free_port()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def free_port_range(width: int = 40) -> int:
    """A base port with the ``width`` ports after it free on loopback, below the kernel's ephemeral range: the
    services get their ports well after this check, and a port inside that range can meanwhile become the source
    port of any outgoing connection on the machine (a miner of `gridmint up` once failed to bind that way)."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = random.randrange(20_000, ephemeral_low - width) // 100 * 100
        try:
            for offset in range(width):
                with socket.socket() as check:
                    check.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")
