"""The endpoint URL reading the chain enforces and callers dial with: what it accepts, normalises and refuses."""

from __future__ import annotations

import pytest

from gridmint.chain.endpoint_url import EndpointUrl, parse_endpoint_url

ACCEPTED = {
    "http://127.0.0.1:8091": EndpointUrl("http", "127.0.0.1", 8091, ""),
    "https://Miner.Example.org": EndpointUrl("https", "miner.example.org", 443, ""),
    "http://xn--e1afmkfd.xn--p1ai/api/": EndpointUrl("http", "xn--e1afmkfd.xn--p1ai", 80, "/api/"),
    "http://[::1]:9000/v": EndpointUrl("http", "::1", 9000, "/v"),
    "https://a.io:65535/x%20y": EndpointUrl("https", "a.io", 65535, "/x%20y"),
}

REFUSED = {
    "http://a:99999": "port",
    "http://a:0": "port",
    "http://a:": "port",
    "http://a:+80": "port",
    "http://a:80:81": "port",
    "http://\u043c\u0438\u0440.io": "ASCII",
    "http://caf\u00e9.fr": "ASCII",
    "http://u:p@a.io": "user",
    "http://a.io@127.0.0.1": "user",
    "http://127.0.0.1:26657/?": "query",
    "http://a.io/x#frag": "query",
    "ftp://a.io": "scheme",
    "HTTP://a.io": "scheme",
    "http:/a.io": "scheme",
    "http://": "host",
    "http://-a.io": "host",
    "http://a_b.io": "host",
    "http://a..io": "host",
    "http://999.1.1.1": "IPv4",
    "http://010.0.0.1": "IPv4",
    "http://1.2.3": "IPv4",
    "http://[fe80::1%25eth0]": "IPv6",
    "http://[::1": "IPv6",
    "http://a.io/x y": "ASCII",
    "http://a.io/\x00": "ASCII",
    "http://a.io/%zz": "path",
    "http://a.io/" + "x" * 300: "longer",
}


@pytest.mark.parametrize("url", sorted(ACCEPTED))
def test_accepted_and_normalised(url: str) -> None:
    assert parse_endpoint_url(url, 256) == ACCEPTED[url]


@pytest.mark.parametrize("url", sorted(REFUSED))
def test_refused_saying_what_is_expected(url: str) -> None:
    with pytest.raises(ValueError, match=REFUSED[url]) as refused:
        parse_endpoint_url(url, 256)
    assert "expected http:// or https://" in str(refused.value)


def test_join_keeps_the_base_path_and_never_a_query() -> None:
    base = parse_endpoint_url("http://[::1]:9000/prefix/", 256)
    assert base.join("/v1/embeddings") == "http://[::1]:9000/prefix/v1/embeddings"
    assert parse_endpoint_url("https://a.io:443", 256).join("/v1/x") == "https://a.io/v1/x"
