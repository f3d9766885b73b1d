from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridmint.node.devnode import DevNode
from tests.support.nodes import DevnodeProcess, write_data_dir


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "node"
    write_data_dir(folder, accounts=("alice", "bob", "carol"))
    return folder


@pytest.fixture
def node(data_dir: Path) -> Iterator[DevNode]:
    devnode = DevNode(data_dir, block_time=0)
    yield devnode
    devnode.close()


@pytest.fixture
def devnode_process(data_dir: Path) -> Iterator[DevnodeProcess]:
    process = DevnodeProcess(data_dir, block_time=0.2)
    process.start()
    yield process
    process.stop()
