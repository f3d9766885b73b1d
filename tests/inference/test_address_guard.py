"""Validators and gateways connect only to public addresses, or to the exact IP:port their operator allowed; a
refusal happens before any connection and comes back as HttpError, a per-miner failure."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.inference.address_guard import AddressGuard, RefusedAddressError, parse_allowed, special_use
from gridmint.inference.client import HttpError, MinerClient

SPECIAL = {
    "127.0.0.1": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback", "10.1.2.3": "private",
    "172.16.0.1": "private", "192.168.1.1": "private", "fd00::1": "private", "169.254.169.254": "link-local",
    "fe80::1": "link-local", "224.0.0.1": "multicast", "ff02::1": "multicast", "0.0.0.0": "unspecified",
    "::": "unspecified", "240.0.0.1": "reserved", "100.64.0.1": "special-purpose", "192.0.2.1": "private",
}


@pytest.mark.parametrize("address", sorted(SPECIAL))
def test_special_use_addresses_are_named(address: str) -> None:
    assert special_use(ipaddress.ip_address(address)) == SPECIAL[address]


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert special_use(ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_exact_addresses_and_ports_only() -> None:
    assert parse_allowed("127.0.0.1:8091") == (ipaddress.ip_address("127.0.0.1"), 8091)
    assert parse_allowed("[::1]:80") == (ipaddress.ip_address("::1"), 80)
    for bad in ("127.0.0.1", "localhost:8091", "127.0.0.0/8:80", "127.0.0.1:0", "127.0.0.1:65536", "1.2.3.4:x"):
        with pytest.raises(ValueError, match="expected IP:PORT"):
            parse_allowed(bad)


def test_only_the_named_port_of_a_loopback_address_is_reachable() -> None:
    guard = AddressGuard(["127.0.0.1:8091"])

    async def scenario() -> None:
        assert await guard.resolve("127.0.0.1", 8091) == "127.0.0.1"
        with pytest.raises(RefusedAddressError, match="loopback"):
            await guard.resolve("127.0.0.1", 8092)
        with pytest.raises(RefusedAddressError, match="loopback"):  # a name is resolved, then checked
            await guard.resolve("localhost", 8092)
        with pytest.raises(RefusedAddressError, match="private"):
            await guard.resolve("10.0.0.1", 8091)

    asyncio.run(scenario())


def test_a_miner_announcing_a_refused_address_is_never_connected_to() -> None:
    """A listener on a loopback port nobody allowed: the client's call fails as HttpError and it sees nothing."""
    connections: list[object] = []

    async def scenario() -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(writer)
            writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        miner = format_address(PrivateKey(b"\x02" * 32).address)
        async with server, MinerClient(PrivateKey(b"\x01" * 32), timeout_s=2, allow=["127.0.0.1:1"]) as client:
            for url in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::ffff:127.0.0.1]:{port}"):
                with pytest.raises(RefusedAddressError):
                    await client.call(url, "/v1/embeddings", miner, {"model": "m", "input": "x"})
            for url in ("http://a:99999", "http://\u043c\u0438\u0440.io", "http://u@127.0.0.1:1", f"http://127.0.0.1:{port}/?"):
                with pytest.raises(HttpError, match="refused"):
                    await client.call(url, "/v1/embeddings", miner, {"model": "m", "input": "x"})
        assert connections == []

    asyncio.run(scenario())
