"""A small world on the real app for the invariant machine and the deep fuzz: a subnet with validators and miners,
a gateway with a credit line, two providers, and an app that checks itself after every block.

``CheckedDriver`` is the ``Driver`` of tests/support/chain.py that, after every block, requires every module's
invariants to hold and every result to be a success or a registered refusal (never ``app/internal_error``), and
records each block so that ``replay`` can feed the same blocks to a fresh app from genesis and compare the app hash
at every height and the final state.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmint.chain.app import MESSAGE_TYPES, MODULES, App, TxResult
from gridmint.chain.credit import MsgOpenCredit, MsgRegisterGateway
from gridmint.chain.errors import INTERNAL_ERROR, lookup
from gridmint.chain.genesis import Genesis, validate_genesis
from gridmint.chain.market import MsgRegisterProvider
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.store import Store
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.tx import decode_tx
from tests.support.chain import MINT, Driver, genesis, key

VALIDATORS = ("v1", "v2")
MINERS = ("m1", "m2", "m3")
CONSUMERS = ("c1", "c2")
PROVIDERS = ("p1", "p2")
TENANTS = ("t1", "t2")
GATEWAY = "gw"
COLDKEYS = ("owner", *VALIDATORS, *MINERS, GATEWAY, *CONSUMERS, *PROVIDERS, *TENANTS, "d1")
HOTKEYS = tuple(f"{name}/hot" for name in (*VALIDATORS, *MINERS, "x1", "x2"))  # x1, x2: spare, unregistered
ACCOUNTS = (*COLDKEYS, *HOTKEYS)
AUTHORITIES = ("authority-0", "new-authority")  # the genesis authority, and one it may propose (both funded)
BALANCE = 10_000 * MINT
GPU_MODELS = {"p1": "A100", "p2": "H100"}
LINE_PRICE = 1_000_000  # grains per 1k tokens the setup's credit line pays at most
GATEWAY_FEE_BPS = 250

# Short periods, so that a run of a few dozen blocks sees epochs, expired orders, exhausted leases, reclaimable
# lines and pruned UIDs.
SECTIONS: dict[str, Any] = {
    "subnets": {"params": {"min_lock": 10 * MINT, "lock_decay_period": 50, "max_subnets": 3, "default_tempo": 5}},
    "credit": {"params": {"min_bond": MINT, "settle_grace": 3, "max_duration": 200, "close_notice": 4}},
    "market": {"params": {"min_bond": MINT, "bid_deposit": MINT // 10, "max_bids": 3, "order_ttl": 12}},
}
SUBNET_SETTINGS = {"commit_reveal": 0, "weights_rate_limit": 0, "immunity_period": 2, "max_uids": 6}

_GENESIS: Genesis | None = None


def world_genesis() -> Genesis:
    global _GENESIS
    if _GENESIS is None:
        _GENESIS = genesis(accounts=(*ACCOUNTS, *AUTHORITIES), balance=BALANCE, **SECTIONS)
    return _GENESIS


@dataclass(frozen=True)
class Block:
    txs: tuple[bytes, ...]
    height: int
    time_ns: int
    app_hash: bytes


def message_types_of(raw: bytes) -> list[str]:
    try:
        return [message.TYPE for message in decode_tx(raw, types=MESSAGE_TYPES).body.messages]
    except Exception:  # a transaction that does not decode is counted under no type
        return []


class CheckedDriver(Driver):
    """A Driver whose every block is checked (invariants, result codes) and recorded for a replay.
    ``outcomes`` counts (message type, "ok" or the refusal's name) of single-message transactions, and block
    events by type, so that a test can tell what its workload reached."""

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.blocks: list[Block] = []
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.healthy = True  # False once a block failed its checks (or raised): nothing more to run or replay

    def block(self, *txs: bytes) -> list[TxResult]:
        assert self.healthy, "a block after a failed one"
        self.healthy = False
        for raw in txs:  # the mempool's check first, as a node's would be: it must never fail unforeseen either
            check_refusal(self.app.check_tx(raw), raw)
        self.height += 1
        self.time_ns += 10**9
        result = self.app.finalize_block(list(txs), self.height, self.time_ns, key("authority-0").address)
        self.app.commit()
        assert self.app.store.app_hash == result.app_hash
        self.blocks.append(Block(tuple(txs), self.height, self.time_ns, result.app_hash))
        for raw, tx_result in zip(txs, result.tx_results, strict=True):
            check_refusal(tx_result, raw)
            types = message_types_of(raw)
            if len(types) == 1:
                kind = lookup(tx_result.codespace, tx_result.code)
                self.outcomes[(types[0], "ok" if tx_result.ok else kind.name if kind else "?")] += 1
        for event in result.events:
            self.outcomes[("event", event.type)] += 1
        broken = self.app.check_invariants()
        assert broken == [], f"invariants broken after block {self.height}: {broken}"
        self.healthy = True
        return result.tx_results


def check_refusal(result: TxResult, raw: bytes) -> None:
    """A result is a success or a refusal with a registered code, and never the code of an unforeseen exception."""
    if result.ok:
        return
    kind = lookup(result.codespace, result.code)
    assert kind is not None, f"unregistered error {result.codespace}/{result.code}: {result.log} ({raw.hex()[:200]})"
    assert kind is not INTERNAL_ERROR, f"internal error: {result.log} (types {message_types_of(raw)})"


def replay(blocks: list[Block], folder: Path, expected: App) -> None:
    """Feed ``blocks`` to a fresh app from genesis: the same app hash at every height, and the same final state.
    Then export the final state as a genesis (through JSON, as a file carries it) and start a chain from it: the
    same app hash again, whatever state the workload left."""
    store = Store(folder / "replay.sqlite")
    try:
        app = App(store)
        app.init_chain(world_genesis())
        for block in blocks:
            result = app.finalize_block(list(block.txs), block.height, block.time_ns, key("authority-0").address)
            app.commit()
            assert result.app_hash == block.app_hash, f"the replay disagrees at height {block.height}"
        assert list(store.all_pairs()) == list(expected.store.all_pairs()), "the replay's final state differs"
    finally:
        store.close()
    document = json.loads(json.dumps(expected.export_genesis("2026-06-01T00:00:00Z")))
    restarted = Store(folder / "restarted.sqlite")
    try:
        _, app_hash = App(restarted).init_chain(validate_genesis(document, MODULES))
        assert app_hash == expected.store.app_hash, "a chain started from the export has another app hash"
    finally:
        restarted.close()


def build_world(folder: Path) -> CheckedDriver:
    """Subnet 1 (tempo 5, 6 UIDs) with two staked validators and two miners past their first epoch, gateway
    ``gw`` with a line from ``c1``, providers ``p1`` (A100) and ``p2`` (H100): eight blocks or so."""
    store = Store(folder / "state.sqlite")
    app = App(store)
    app.init_chain(world_genesis())
    net = CheckedDriver(app)
    net.send("owner", MsgCreateSubnet("text-generation", "world"))
    net.send(GATEWAY, MsgRegisterGateway("https://gateway.example", GATEWAY_FEE_BPS, 5 * MINT))
    for name in PROVIDERS:
        net.send(name, MsgRegisterProvider("https://provider.example", GPU_MODELS[name], 4, 80, 32_000, 128_000,
                                           1_000_000, "eu", ["datacenter"], 2 * MINT))
    expect_ok(net)
    for param, value in SUBNET_SETTINGS.items():
        net.send("owner", MsgSetHyperparam(1, param, value))
    for name in (*VALIDATORS, "m1", "m2"):
        net.send(name, MsgRegister(1, key(f"{name}/hot").address, 0))
    net.send("c1", MsgOpenCredit(key(GATEWAY).address, 100 * MINT, 150, LINE_PRICE, GATEWAY_FEE_BPS, 0, 0))
    expect_ok(net)
    for name, stake in zip(VALIDATORS, (300 * MINT, 200 * MINT), strict=True):
        net.send(name, MsgAddStake(1, key(f"{name}/hot").address, stake))
    expect_ok(net)
    net.advance(6)  # an epoch: validator permits
    return net


def expect_ok(net: Driver) -> None:
    for name, results in net.commit().items():
        for result in results:
            assert result.ok, (name, result.log)
