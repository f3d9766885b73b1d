from __future__ import annotations

from pathlib import Path

import numpy as np

from gridmint.chain import codec
from gridmint.chain.crypto import format_address
from gridmint.chain.subnets import MsgAnnounceEndpoint
from gridmint.client.metagraph import Metagraph
from tests.chain.incentive_network import build, hot
from tests.support.chain import MINT, key


def test_metagraph_from_the_chain_answer(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1", "m2"))
    net.ok(hot("m2"), MsgAnnounceEndpoint(1, "http://127.0.0.1:8001", ["smollm2-135m"], 7, 1))
    net.set_weights("v1", {"m1": 10_000, "m2": 65_535})
    net.until_epoch()
    graph = Metagraph.from_answer(codec.decode(net.app.query("/subnets/1/metagraph").value))
    assert graph.n == 3 and graph.block == net.height
    assert graph.hotkeys[net.uid("m2")] == format_address(key(hot("m2")).address)
    assert graph.coldkeys[net.uid("m2")] == format_address(key("m2").address)
    assert graph.uid_of(format_address(key(hot("m1")).address)) == net.uid("m1")
    assert isinstance(graph.incentive, np.ndarray) and graph.incentive.dtype == np.int64
    assert graph.incentive.tolist() == net.vector("incentive")
    assert np.isclose(graph.fraction("incentive").sum(), 1.0)
    assert graph.fraction("incentive")[net.uid("m2")] > graph.fraction("incentive")[net.uid("m1")]
    assert graph.endpoints[net.uid("m1")] is None
    assert graph.endpoints[net.uid("m2")]["models"] == ["smollm2-135m"]
    assert graph.params["tempo"] == 10
    assert graph.permit[net.uid("v1")] == 1
