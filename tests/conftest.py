"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chain import Chain, make_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test downloads a model: the ones it needs ship or are cached


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    app = make_app(tmp_path)
    yield Chain(app)
    app.store.close()


@pytest.fixture(params=["devnode", "cometbft"])
def node_kind(request: pytest.FixtureRequest) -> str:
    """Run a live test against the devnode and against a 4-authority CometBFT network (``make cometbft``)."""
    return str(request.param)
