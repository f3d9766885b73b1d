"""The one reading of a miner's endpoint URL: what the chain accepts in an announcement and what callers dial.

Strict on purpose. The chain stores what every validator and gateway will connect to, so anything a client library
might read two ways is refused rather than interpreted: the scheme is ``http`` or ``https`` (lower case), the
host an ASCII DNS name (international names in their ``xn--`` form: no IDNA conversion happens here), a dotted IPv4
address or a bracketed IPv6 one, the port 1 to 65,535 (explicit, or the scheme's default), and after it at most a
path. No userinfo (``user@``), no query and no fragment: callers join their fixed endpoint path to the base, and a
query or ``@`` is how an announced URL turns a POST into something else. Pure and deterministic (chain code).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HOST_BYTES = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PATH = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
_DIGITS = re.compile(r"[0-9]{1,5}")
EXPECTED = ("http:// or https://, an ASCII host name or IP address, an optional port from 1 to 65535 and an "
            "optional path (no user@, no ?query, no #fragment)")


@dataclass(frozen=True)
class EndpointUrl:
    scheme: str
    host: str  # lower case; an IPv6 address without its brackets
    port: int
    path: str  # "" or starting with "/"

    @property
    def authority(self) -> str:
        """``host[:port]`` as the Host header carries it (the port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def join(self, path: str) -> str:
        """The URL of ``path`` (a fixed endpoint path such as ``/v1/embeddings``) under this base."""
        return f"{self.scheme}://{self.authority}{self.path.rstrip('/')}{path}"


def parse_endpoint_url(url: str, max_bytes: int) -> EndpointUrl:
    """The URL's parts, or ValueError with a sentence saying what is wrong and what is expected."""
    if len(url.encode()) > max_bytes:
        raise ValueError(f"the URL is longer than {max_bytes} bytes; expected {EXPECTED}")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError(f"the URL holds characters outside printable ASCII (international host names go in their "
                         f"xn-- form); expected {EXPECTED}")
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in DEFAULT_PORTS:
        raise ValueError(f"the scheme is not http or https; expected {EXPECTED}")
    if "?" in rest or "#" in rest:
        raise ValueError(f"the URL has a query or fragment; expected {EXPECTED}")
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in authority:
        raise ValueError(f"the URL names a user (user@host); expected {EXPECTED}")
    host, port = _host_and_port(authority, DEFAULT_PORTS[scheme])
    if not _PATH.fullmatch(path):
        raise ValueError(f"the path holds characters a URL path may not; expected {EXPECTED}")
    return EndpointUrl(scheme, host, port, path)


def _host_and_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        host, after = authority[1:end], authority[end + 1:]
        try:
            parsed = ipaddress.IPv6Address(host) if end > 0 and "%" not in host else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise ValueError(f"'[{host[:60]}]' is not an IPv6 address; expected {EXPECTED}")
        host = str(parsed)
    else:
        host, colon, port_text = authority.partition(":")
        after = colon + port_text
        host = host.lower()
        labels = host.split(".")
        if not host or len(host) > MAX_HOST_BYTES or not all(_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"'{host[:60]}' is not a host name (letters, digits and hyphens in dot-separated labels) "
                             f"or an IP address; expected {EXPECTED}")
        # Read here rather than by ipaddress, whose IPv4 strictness (leading zeros) has changed between releases.
        if all(label.isdigit() for label in labels) and (
                len(labels) != 4 or any(int(label) > 255 or (label[0] == "0" and label != "0") for label in labels)):
            raise ValueError(f"'{host[:60]}' is not an IPv4 address (four numbers from 0 to 255, no leading zeros); "
                             f"expected {EXPECTED}")
    if not after:
        return host, default_port
    if not after.startswith(":") or not _DIGITS.fullmatch(after[1:]) or not 1 <= int(after[1:]) <= 65_535:
        raise ValueError(f"the port '{after[1:][:20]}' is not a number from 1 to 65535; expected {EXPECTED}")
    return host, int(after[1:])
