"""bench/busy_subnet.py on a real App: the set-up registers and stakes what it says, every block's transactions
succeed, a seed gives the same chain twice, and a transaction too large for any block stops the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from busy_subnet import NETUID, BusySubnet, in_blocks, sign_next
from gridmint.chain import codec
from gridmint.chain.app import MODULES, App
from gridmint.chain.crypto import PrivateKey
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.store import Store
from gridmint.chain.tx import Msg


class OneApp:
    """The smallest chain the subnet runs on: one App, each block finalized and committed, every tx required to
    succeed."""

    def __init__(self, path: Path, subnet: BusySubnet) -> None:
        self.app = App(Store(path))
        self.app.init_chain(validate_genesis(subnet.genesis_document(), MODULES))
        self.height = 0
        self.nonces: dict[bytes, int] = {}
        self.txs = 0
        self.app_hash = b""

    def tx(self, signer: PrivateKey, *messages: Msg) -> bytes:
        return sign_next(self.app.store, self.nonces, signer, *messages)

    def fitting(self, txs: list[bytes]) -> int:
        return len(self.app.fitting(txs, self.height + 1).txs)

    def block(self, txs: list[bytes]) -> None:
        self.height += 1
        result = self.app.finalize_block(txs, self.height, (1_767_225_600 + self.height) * 10**9, b"\x01" * 20)
        assert [r.log for r in result.tx_results if not r.ok] == []
        self.app.commit()
        self.txs += len(txs)
        self.app_hash = result.app_hash


def run(path: Path, seed: int, weight_blocks: int) -> tuple[BusySubnet, OneApp]:
    subnet = BusySubnet("test", uids=12, validators=3, tempo=3, seed=seed)
    chain = OneApp(path, subnet)
    subnet.set_up(chain)
    for _ in range(weight_blocks):
        subnet.weights_block(chain)
    return subnet, chain


def test_the_set_up_fills_the_subnet_and_every_validator_sets_weights_once_an_epoch(tmp_path: Path) -> None:
    subnet, chain = run(tmp_path / "a.sqlite", seed=7, weight_blocks=0)
    info = codec.decode(chain.app.query(f"/subnets/{NETUID}").value)
    assert info["n"] == 12 and info["params"]["tempo"] == 3
    before = chain.txs
    for _ in range(6):  # two epochs: each of the 3 validators once in each
        subnet.weights_block(chain)
    assert chain.txs - before == 6


def test_a_seed_gives_the_same_chain_and_another_seed_another(tmp_path: Path) -> None:
    (_, first), (_, again) = run(tmp_path / "a.sqlite", 7, 4), run(tmp_path / "b.sqlite", 7, 4)
    _, other = run(tmp_path / "c.sqlite", 8, 4)
    assert first.app_hash == again.app_hash != other.app_hash


class NothingFits:
    """A chain whose blocks have no room for the transaction at hand."""

    def __init__(self) -> None:
        self.height = 5
        self.blocks: list[list[bytes]] = []

    def tx(self, signer: PrivateKey, *messages: Msg) -> bytes:
        raise AssertionError("not signed here")

    def fitting(self, txs: list[bytes]) -> int:
        return 0

    def block(self, txs: list[bytes]) -> None:
        self.blocks.append(txs)


def test_a_transaction_larger_than_any_block_stops_the_run_before_any_block() -> None:
    chain = NothingFits()
    with pytest.raises(SystemExit, match="block 6: a transaction is larger than a whole block"):
        in_blocks(chain, [b"tx"])
    assert chain.blocks == []
