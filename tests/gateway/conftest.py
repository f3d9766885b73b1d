"""Fixtures for gateway apps served in the test's own process (``serve`` is the whole suite's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gateway_app import GatewayBooks, open_books


@pytest.fixture
def books(tmp_path: Path) -> GatewayBooks:
    """The gateway's API keys and ledger, in one database under the test's folder."""
    return open_books(tmp_path)
