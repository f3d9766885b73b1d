"""``gridmint provider run``: a single-tenant runtime (ray) starts only with the tenants it trusts named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gridmint.chain.crypto import format_address
from gridmint.cli import provider as provider_cli
from gridmint.cli.main import cli
from tests.support.chain import key

TENANT = format_address(key("tenant").address)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GRIDMINT_WALLET_DIR", str(tmp_path / "wallets"))
    monkeypatch.setenv("GRIDMINT_PASSWORD", "test password")
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_ray_without_a_trusted_tenant_is_refused_before_anything_starts(run) -> None:  # type: ignore[no-untyped-def]
    # The wallet does not exist: the refusal comes before the coldkey is read (or a password asked for).
    result = run("provider", "run", "--runtime", "ray", "--wallet", "nobody")
    assert result.exit_code == 2
    assert "the ray runtime lets a lease's workload reach other leases" in result.output
    assert "--trusted-tenant gm1..." in result.output


def test_a_trusted_tenant_must_be_an_address(run) -> None:  # type: ignore[no-untyped-def]
    result = run("provider", "run", "--runtime", "ray", "--trusted-tenant", "alice", "--wallet", "nobody")
    assert result.exit_code == 2 and "Invalid value for '--trusted-tenant'" in result.output
    assert "is not an address; expected the form gm1..." in result.output


def test_trusted_tenants_reach_the_daemon_as_the_chain_writes_them(run, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class StopHereError(Exception):
        pass

    def capture(key: Any, client: Any, capacity: Any, price: Any, runtime: Any, config: Any, data_dir: Any) -> Any:
        seen.append((runtime.name, config.trusted_tenants))
        raise StopHereError

    monkeypatch.setattr(provider_cli, "Provider", capture)
    run("wallet", "create", "prov")
    with pytest.raises(StopHereError):
        run("provider", "run", "--runtime", "ray", "--trusted-tenant", TENANT.upper(), "--trusted-tenant", TENANT,
            "--wallet", "prov", "--node", "http://127.0.0.1:9", "--data-dir", str(tmp_path / "data"))
    assert seen == [("ray", (TENANT,))]  # one case, once
