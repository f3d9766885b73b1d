"""The slowest block the worst-case allowed configuration can cause, against an ordinary block, through the real App.

    .venv/bin/python bench/adversarial_block.py [--full-subnets 2] [--ordinary 1000] [--max-block-units 800000]

The worst case, built with real transactions (in blocks as big as the chain allows): every subnet slot taken
(``max_subnets`` = 128); ``--full-subnets`` of them at the caps (4,096 UIDs, 256 validators with stake, dense
weights from every validator over every UID, dense bonds after an epoch, zero burn, tempo at the least the rate
rule allows) and all of them falling due in the same block; the chain's own limits at their bounds
(``max_tx_bytes`` 65,536; ``max_block_units`` 800,000, its default: 2,424 transfers). Into that block go the most
work the fees let a block carry besides its epochs: transfers from as many accounts, never seen by check_tx (so
each signature is verified in the block; per unit the costliest transactions), until ``max_block_units`` is used
up. The scheduler runs one full epoch in that block (the other waits for the next) and reserves its units first.

Also timed in the same run: the block after it (the other full epoch, no transactions), a block of transfers up to
``max_block_units`` without an epoch, one with a registration that prunes a UID of a full subnet (every
validator's dense bonds rewritten) and transfers for the rest, and the ordinary block: ``--ordinary`` transfers
that passed check_tx, as the mempool hands them over. Each figure is finalize_block + commit, wall clock (this
process's CPU time beside it: the machine may be shared). The last line is JSON with ``worst_block_ms`` (the slowest
of the four attack blocks, named in ``worst_block``) and ``ordinary_block_ms``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gridmint.chain import bank, commitments, fees, neurons
from gridmint.chain.app import MODULES, App
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.genesis import make_genesis_document, validate_genesis
from gridmint.chain.params import params_to_json
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.state import CommittedView
from gridmint.chain.store import Store
from gridmint.chain.subnets import (
    MAX_UIDS_CAP,
    MAX_VALIDATORS_CAP,
    Hyperparams,
    MsgCreateSubnet,
    MsgRegister,
    MsgSetHyperparam,
)
from gridmint.chain.tx import Msg, TxBody, sign_tx
from gridmint.chain.weights import MsgSetWeights

MINT = 10**9
CHAIN_ID = "gridmint-bench"
MAX_SUBNETS = 128
MAX_BLOCK_UNITS = bank.Params().max_block_units  # the default and the bound
FULL_TEMPO = 130  # the least tempo the rate rule allows a subnet at both caps when there are 128 subnets


def make_key(label: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(b"gridmint adversarial block " + label.encode()).digest())


def progress(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, folder: Path, funded: list[PrivateKey], max_block_units: int) -> None:
        document = make_genesis_document(
            CHAIN_ID, "2026-01-01T00:00:00Z", [("authority-0", make_key("authority").public_key)],
            [(format_address(k.address), 10_000_000 * MINT) for k in funded])
        document["app_state"]["tx"] = {"max_tx_bytes": 65_536}
        document["app_state"]["bank"]["params"]["max_block_units"] = max_block_units
        document["app_state"]["subnets"] = {"params": {"min_lock": 0, "max_subnets": MAX_SUBNETS}}
        self.app = App(Store(folder / "state.sqlite"))
        self.app.init_chain(validate_genesis(document, MODULES))
        self.height = 0
        self.time_ns = 1_767_225_600 * 10**9
        self.nonces: dict[bytes, int] = {}
        self.cpu_ms = 0.0
        self.max_block_units = max_block_units
        self.block([])

    def tx(self, signer: PrivateKey, *messages: Msg) -> bytes:
        """A transaction at the fee the chain requires on the committed state (chain/fees.py)."""
        nonce = self.nonces.get(signer.address, 0) + 1
        self.nonces[signer.address] = nonce
        body = TxBody(CHAIN_ID, signer.public_key, nonce, 0, tuple(messages))
        fee = fees.get_tx_cost(CommittedView(self.app.store), body).fee
        return sign_tx(TxBody(CHAIN_ID, signer.public_key, nonce, fee, tuple(messages)), signer)

    def block(self, txs: list[bytes], expect_ok: bool = True) -> float:
        """Finalize and commit one block; returns its milliseconds (wall clock; ``self.cpu_ms`` has the CPU's)."""
        self.height += 1
        self.time_ns += 10**9
        started, cpu_started = time.perf_counter(), time.process_time()
        result = self.app.finalize_block(txs, self.height, self.time_ns, make_key("authority").address)
        self.app.commit()
        elapsed = (time.perf_counter() - started) * 1000
        self.cpu_ms = (time.process_time() - cpu_started) * 1000
        failed = [r for r in result.tx_results if not r.ok]
        if expect_ok and failed:
            raise SystemExit(f"block {self.height}: {len(failed)} transactions failed, first: "
                             f"{failed[0].codespace}/{failed[0].code} {failed[0].log}")
        return elapsed

    def setup_block(self, txs: list[bytes], needed: int) -> None:
        """A block of setup transactions (``needed`` units), after empty blocks while due epochs leave no room."""
        while fees.get_reserved_units(self.view(), self.height + 1) + needed > self.max_block_units:
            self.block([])
        self.block(txs)

    def view(self) -> CommittedView:
        return CommittedView(self.app.store)

    def subnet(self, netuid: int) -> dict[str, Any]:
        return neurons.require_subnet(self.view(), netuid)

    def until(self, condition: Any, what: str, limit: int = 1_000) -> None:
        for _ in range(limit):
            if condition():
                return
            self.block([])
        raise SystemExit(f"{what} did not happen within {limit} blocks")


def build(bench: Bench, owner: PrivateKey, hotkeys: list[PrivateKey], full: int) -> None:
    rng = np.random.default_rng(1)
    uids = len(hotkeys)
    # chain/fees.py's schedule at the full shape, with the pruned hotkey's commitments (default retention)
    register_units = 550 + 82 * uids + fees.COMMITMENT_DELETION * commitments.Params().retention_epochs + \
        fees.ENVELOPE_UNITS
    stake_units = 300 + 8 * uids
    weight_units = 200 + 15 * uids + fees.ENVELOPE_UNITS
    bench.block([bench.tx(owner, *[MsgCreateSubnet("text-generation", f"full-{i}") for i in range(full)])])
    for netuid in range(1, full + 1):
        settings = [("tempo", FULL_TEMPO), ("max_uids", len(hotkeys)), ("max_validators", MAX_VALIDATORS_CAP),
                    ("commit_reveal", 0), ("weights_rate_limit", 0), ("immunity_period", 0), ("burn_min", 0),
                    ("burn_initial", 0), ("burn_max", 0)]
        bench.block([bench.tx(owner, *[MsgSetHyperparam(netuid, name, value) for name, value in settings])])
    started = time.perf_counter()
    for netuid in range(1, full + 1):  # a registration on a 4,096-UID subnet fills most of a block's units
        for uid, hotkey in enumerate(hotkeys):
            bench.setup_block([bench.tx(owner, MsgRegister(netuid, hotkey.address, 0))], register_units)
            if uid % 1_024 == 1_023:
                progress(f"  subnet {netuid}: {uid + 1} UIDs registered ({time.perf_counter() - started:.0f} s)")
    validators = hotkeys[:MAX_VALIDATORS_CAP]
    stakes = [MsgAddStake(netuid, hotkey.address, (1_000 + uid) * MINT)
              for netuid in range(1, full + 1) for uid, hotkey in enumerate(validators)]
    for start in range(0, len(stakes), 14):
        bench.setup_block([bench.tx(owner, *stakes[start:start + 14])], 14 * stake_units)
    for netuid in range(1, full + 1):
        epoch = bench.subnet(netuid)["epoch"]
        bench.until(lambda n=netuid, e=epoch: bench.subnet(n)["epoch"] > e, f"subnet {netuid}'s permits epoch")
    progress(f"  stakes set and permits given ({time.perf_counter() - started:.0f} s)")
    everyone = list(range(len(hotkeys)))
    weights = [bench.tx(hotkey, MsgSetWeights(netuid, everyone, rng.integers(1, 65_536, len(hotkeys)).tolist()))
               for netuid in range(1, full + 1) for hotkey in validators]
    for start in range(0, len(weights), 7):  # 61,840 units each
        bench.setup_block(weights[start:start + 7], 7 * weight_units)
    for netuid in range(1, full + 1):
        epoch = bench.subnet(netuid)["epoch"]
        bench.until(lambda n=netuid, e=epoch: bench.subnet(n)["epoch"] > e, f"subnet {netuid}'s bonds epoch")
    progress(f"  dense weights and bonds on {full} subnets ({time.perf_counter() - started:.0f} s)")
    fillers = [MsgCreateSubnet("text-generation", f"filler-{i}") for i in range(MAX_SUBNETS - full)]
    for start in range(0, len(fillers), 16):
        bench.block([bench.tx(owner, *fillers[start:start + 16])])
    # Tempos that bring every full subnet's next epoch into one block.
    last = {netuid: bench.subnet(netuid)["last_epoch"] for netuid in range(1, full + 1)}
    due = max(last.values()) + FULL_TEMPO
    bench.block([bench.tx(owner, *[MsgSetHyperparam(n, "tempo", due - last[n]) for n in last])])
    assert len(neurons.netuids(bench.view())) == MAX_SUBNETS


def transfers(bench: Bench, senders: list[PrivateKey], to: bytes) -> list[bytes]:
    return [bench.tx(sender, bank.MsgSend(to, 1)) for sender in senders]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full-subnets", type=int, default=2)
    parser.add_argument("--ordinary", type=int, default=1_000)
    parser.add_argument("--max-block-units", type=int, default=MAX_BLOCK_UNITS)
    parser.add_argument("--uids", type=int, default=MAX_UIDS_CAP, help="UIDs of a full subnet (smaller: a dry run)")
    args = parser.parse_args()
    full_shape = {"max_uids": args.uids, "max_validators": MAX_VALIDATORS_CAP, "tempo": FULL_TEMPO}

    def block_units(message: Msg) -> int:
        shape = {**params_to_json(Hyperparams()), **full_shape}
        return fees.compute_tx_cost(bank.Params(), [message], "", lambda netuid: shape, lambda: shape).block_units

    send_units = block_units(bank.MsgSend(bytes(20), 1))
    register_units = block_units(MsgRegister(1, bytes(20), 0))
    filler_count = (args.max_block_units - register_units) // send_units
    attack_count = args.max_block_units // send_units
    owner, pruner = make_key("owner"), make_key("pruner")
    hotkeys = [make_key(f"hotkey {i}") for i in range(args.uids)]
    senders = [make_key(f"sender {i}") for i in range(2 * attack_count + filler_count + args.ordinary)]
    with tempfile.TemporaryDirectory() as folder:
        progress(f"Building {MAX_SUBNETS} subnets, {args.full_subnets} of them at the caps "
                 f"({args.uids} UIDs, {MAX_VALIDATORS_CAP} validators, dense weights and bonds)...")
        bench = Bench(Path(folder), [owner, pruner, *hotkeys[:MAX_VALIDATORS_CAP], *senders], args.max_block_units)
        started = time.perf_counter()
        build(bench, owner, hotkeys, args.full_subnets)
        progress(f"Built in {time.perf_counter() - started:.0f} s at height {bench.height}.")
        due = {n: bench.subnet(n)["last_epoch"] + bench.subnet(n)["params"]["tempo"]
               for n in range(1, args.full_subnets + 1)}
        bench.until(lambda: bench.height + 1 >= min(due.values()), "the due block")
        assert set(due.values()) == {bench.height + 1}, due

        # The worst block: every full subnet due, transfers in what the due epoch leaves of max_block_units.
        reserved = fees.get_reserved_units(bench.view(), bench.height + 1)
        room = (args.max_block_units - reserved) // send_units
        worst_txs = transfers(bench, senders[:room], owner.address)
        epochs_before = {n: bench.subnet(n)["epoch"] for n in due}
        worst_ms = bench.block(worst_txs)
        worst_cpu = bench.cpu_ms
        ran = [n for n in due if bench.subnet(n)["epoch"] > epochs_before[n]]
        progress(f"worst block: {len(ran)} of {len(due)} due full epochs ({reserved} units reserved) and {room} "
                 f"unverified transfers: {worst_ms:8.1f} ms (CPU {worst_cpu:.1f})")
        next_ms = bench.block([])
        next_cpu = bench.cpu_ms
        progress(f"next block: the waiting full epoch alone, no transactions: {next_ms:8.1f} ms (CPU {next_cpu:.1f})")
        attack = transfers(bench, senders[room:room + attack_count], owner.address)
        messages_ms = bench.block(attack)
        messages_cpu = bench.cpu_ms
        progress(f"a block of {len(attack)} unverified transfers (max_block_units), no epoch: {messages_ms:8.1f} ms "
                 f"(CPU {messages_cpu:.1f})")
        prune = bench.tx(pruner, MsgRegister(1, make_key("newcomer").address, 0))
        rest = senders[room + attack_count:room + attack_count + filler_count]
        prune_ms = bench.block([prune, *transfers(bench, rest, owner.address)])
        prune_cpu = bench.cpu_ms
        progress(f"a pruning registration on a full subnet and {len(rest)} unverified transfers: {prune_ms:8.1f} ms "
                 f"(CPU {prune_cpu:.1f})")
        first = room + attack_count + filler_count
        ordinary = transfers(bench, senders[first:first + args.ordinary], owner.address)
        for raw in ordinary:
            checked = bench.app.check_tx(raw)
            if not checked.ok:
                raise SystemExit(f"check_tx refused an ordinary transfer: {checked.log}")
        ordinary_ms = bench.block(ordinary)
        ordinary_cpu = bench.cpu_ms
        progress(f"ordinary block: {len(ordinary)} transfers that passed check_tx: {ordinary_ms:8.1f} ms "
                 f"(CPU {ordinary_cpu:.1f})")
        problems = bench.app.check_invariants()
        if problems:
            raise SystemExit(f"invariants broken: {problems}")
    # The figure is the slowest of the attack blocks, whichever it was in this run.
    attacks = {"epochs_and_transfers": (worst_ms, worst_cpu), "next": (next_ms, next_cpu),
               "transfers": (messages_ms, messages_cpu), "prune": (prune_ms, prune_cpu)}
    slowest = max(attacks, key=lambda name: attacks[name][0])
    progress(f"slowest attack block: {slowest}, {attacks[slowest][0]:.1f} ms against an ordinary {ordinary_ms:.1f} ms")
    print(json.dumps({"worst_block_ms": round(attacks[slowest][0], 1), "ordinary_block_ms": round(ordinary_ms, 1),
                      "worst_block_cpu_ms": round(attacks[slowest][1], 1),
                      "ordinary_block_cpu_ms": round(ordinary_cpu, 1), "worst_block": slowest,
                      "epochs_block_ms": round(worst_ms, 1), "next_block_ms": round(next_ms, 1),
                      "transfers_block_ms": round(messages_ms, 1), "prune_block_ms": round(prune_ms, 1),
                      "full_epochs_due": len(due), "full_epochs_run": len(ran), "subnets": MAX_SUBNETS,
                      "worst_txs": len(worst_txs), "ordinary_txs": len(ordinary), "uids": len(hotkeys),
                      "max_block_units": args.max_block_units}))


if __name__ == "__main__":
    sys.exit(main())
