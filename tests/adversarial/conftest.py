from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.hostile_network import ATTACKER, HostileNetwork
from tests.support.chain import MINT


@pytest.fixture(scope="package")
def hostile_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileNetwork]:
    """One network for the whole catalogue (starting four nodes costs seconds); every attack checks that it left
    the network healthy, so an attack that harms it fails where it happens."""
    network = HostileNetwork(Path(tmp_path_factory.mktemp("hostile")) / "net")
    network.start([ATTACKER], {"subnets": {"params": {"min_lock": 10 * MINT, "lock_decay_period": 20,
                                                      "default_tempo": 10, "max_subnets": 8}}})
    try:
        yield network
    finally:
        network.stop()
