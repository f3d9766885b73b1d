"""Where validators and gateways may connect: the addresses a miner's announced host resolves to, checked.

A miner chooses the URL every validator and gateway of its subnet will POST to, so without a check it could point
them at their own node's RPC port, a cloud metadata service or anything on their private network. Before each new
connection the host is resolved once and every address it gives must be public: loopback, private (RFC 1918,
RFC 4193), link-local, multicast, unspecified, reserved and the other special-purpose ranges are refused, unless the
operator's allow-list names that exact address and port (``--allow-endpoint 127.0.0.1:8091``; ``gridmint up``
lists its own miners, never a range). The connection is then made to the address that was checked, so a name
cannot resolve to something else between the check and the connect (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from gridmint.inference.http import HttpError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddressError(HttpError):
    """The miner's host resolves to an address this caller may not connect to."""


def parse_allowed(entry: str) -> tuple[Address, int]:
    """``IP:port`` (IPv6 as ``[addr]:port``) as the allow-list takes it; ValueError saying what was expected."""
    host, colon, port = entry.rpartition(":")
    try:
        if not colon or not port.isdigit() or not 1 <= int(port) <= 65_535:
            raise ValueError
        return ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host), int(port)
    except ValueError:
        raise ValueError(f"'{entry[:100]}' is not an exact address and port; expected IP:PORT such as "
                         "127.0.0.1:8091 or [::1]:8091 (a name or a range is not accepted)") from None


def special_use(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, test in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                       ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                       ("reserved", address.is_reserved), ("private", address.is_private)):
        if test:
            return kind
    return None if address.is_global else "special-purpose"


class AddressGuard:
    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allowed = frozenset(parse_allowed(entry) for entry in allow)

    def check(self, address: Address, port: int) -> None:
        kind = special_use(address)
        if kind is not None and (address, port) not in self.allowed:
            shown = f"[{address}]" if address.version == 6 else str(address)
            raise RefusedAddressError(f"refused to connect to {shown}:{port}: a {kind} address, not in this "
                                      "operator's allow-list (--allow-endpoint)")

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to for ``host``: resolved once, every address it gives checked, the first one."""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as error:
                raise HttpError(f"cannot resolve {host[:100]}: {error}") from None
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise HttpError(f"{host[:100]} resolves to no address")
        for address in addresses:  # all of them: a name mixing public and private addresses is refused
            self.check(address, port)
        return str(addresses[0])
