from __future__ import annotations

import pytest

from gridmint.chain.errors import ChainError
from gridmint.market.deployment import parse_deployment, parse_manifest

GOOD = """\
version: 1
services:
  web:
    command: ["python", "-m", "http.server", "8080"]
    env: {GREETING: hello, RETRIES: 3}
    ports: [8080]
resources:
  cpu: 0.5
  memory: 512
  gpu: {units: 1, models: [A100, H100], min_vram_gb: 40}
price:
  max_per_block: 0.001
deposit: 5
"""


def test_a_valid_file() -> None:
    deployment = parse_deployment(GOOD)
    assert (deployment.cpu_millis, deployment.memory_mb, deployment.gpu_units) == (500, 512, 1)
    assert deployment.gpu_models == ["A100", "H100"] and deployment.min_vram_gb == 40
    assert deployment.max_price == 1_000_000 and deployment.deposit == 5 * 10**9
    assert deployment.services[0].env == {"GREETING": "hello", "RETRIES": "3"}
    assert len(deployment.manifest_hash) == 32
    assert parse_deployment(GOOD).manifest_hash == deployment.manifest_hash  # stable
    changed = parse_deployment(GOOD.replace("ports: [8080]", "ports: [8081]"))
    assert changed.manifest_hash != deployment.manifest_hash


@pytest.mark.parametrize("text, line, words", [
    ("version: 1\nservices: [\n", 3, "not valid YAML"),
    ("", 1, "empty"),
    (GOOD.replace("version: 1", "version: 2"), 1, "version: 1"),
    (GOOD.replace("  cpu: 0.5", "  cpu: lots"), 8, "resources.cpu"),
    (GOOD.replace("ports: [8080]", "ports: [99999]"), 6, "services.web.ports"),
    (GOOD.replace("command: [\"python\", \"-m\", \"http.server\", \"8080\"]", "image: nginx\n    command: [x]"), 3,
     "exactly one of image or command"),
    (GOOD.replace("deposit: 5", "deposit: 0.0001"), 13, "cover at least one block"),
    (GOOD.replace("max_per_block: 0.001", "max_per_block: cheap"), 12, "price.max_per_block"),
    (GOOD + "extras: 1\n", 14, "unknown section"),
    (GOOD.replace("  web:", "  Web Server:"), 3, "service name"),
])
def test_errors_point_at_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ChainError) as caught:
        parse_deployment(text)
    assert caught.value.kind.name == "invalid_deployment"
    assert caught.value.message.startswith(f"line {line}") and words in caught.value.message, caught.value.message


def test_a_manifest_is_checked_like_the_file_it_came_from() -> None:
    manifest = parse_deployment(GOOD).manifest
    assert [s.name for s in parse_manifest(manifest)] == list(manifest["services"])
    for bad, words in [
        ([], "expected a manifest"),
        ({"version": 2, "services": {}}, "expected a manifest"),
        ({"version": 1, "services": {}, "extra": 1}, "expected a manifest"),
        ({"version": 1, "services": {}}, "expected 1 to 16 services"),
        ({"version": 1, "services": {"Web": {"command": ["x"]}}}, "services.Web: a service name"),
        ({"version": 1, "services": {"web": {"command": "x"}}}, "services.web.command: expected a list"),
        ({"version": 1, "services": {"web": {"command": ["x"], "ports": [True]}}}, "services.web.ports"),
        ({"version": 1, "services": {"web": {"command": ["x"], "env": {"A B": "1"}}}}, "services.web.env"),
    ]:
        with pytest.raises(ChainError, match=words) as caught:
            parse_manifest(bad)
        assert caught.value.kind.name == "invalid_manifest"
