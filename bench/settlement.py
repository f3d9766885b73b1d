"""Chain time to check and apply 1,000 receipt-backed settlement entries, against the same entries applied the way
settlement worked before receipts (the baseline), in the same run.

    .venv/bin/python bench/settlement.py [--rounds 7] [--consumers 20] [--miners 50]

Two Apps are built alike: a subnet with ``--miners`` miners (each its own coldkey and hotkey), a gateway, and
``--consumers`` consumers each with a credit line; so ``consumers × miners`` entries (1,000 by default), one per
(line, miner). Each round the miners sign cumulative receipts for all of them (not timed), the gateway packs them
into as few ``credit/settle`` transactions as ``max_tx_bytes`` (the genesis default) allows, and both Apps run the
very same transaction bytes in one block each; the time is ``finalize_block`` + ``commit`` of that block (envelope
decoding and signature, fee, every entry's checks and payments, end-of-block hooks, the store's commit), the two
Apps alternating which goes first.

- **receipts**: the credit module as it is (chain/credit.py): per entry the line, the miner's owner, the paid record,
  the price and credit checks, then one ed25519 verification of the miner's signature; payments grouped by coldkey.
- **baseline**: the same App with ``credit/settle`` handled as before receipts (the handler of main before this
  change, copied below and reading the new entry shape): per entry the miner's owner and the line are looked up, the
  amount and fee checked against the balance, the line updated and the miner's coldkey paid; no paid record, no
  price or cap check, no signature.

Only blocks whose transactions all succeeded are counted. The last line is JSON:
{"ms_per_1000_entries", "baseline_ms_per_1000_entries", "ratio", "cpu_ms_per_1000_entries", "entries", ...}; the
figures are medians over the rounds, per 1,000 successful entries, wall time unless named CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from gridmint.chain import bank, credit, fees, neurons
from gridmint.chain.app import MODULES, App
from gridmint.chain.credit import MsgOpenCredit, MsgRegisterGateway, MsgSettle
from gridmint.chain.crypto import PrivateKey, address_of, format_address, verify
from gridmint.chain.genesis import TxParams, make_genesis_document, validate_genesis
from gridmint.chain.module import Context, ModuleSpec
from gridmint.chain.receipts import MINER_DOMAIN, Receipt, receipt_message, sign_receipt
from gridmint.chain.state import BlockState
from gridmint.chain.store import Store
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister
from gridmint.chain.tx import Msg, TxBody, sign_tx
from gridmint.chain.units import format_mint

CHAIN_ID = "gridmint-bench"
MINT = 10**9
PRICE = 1_000_000  # grains per 1k tokens, the lines' maximum and the receipts' price
TOKENS_PER_ROUND = 1_000  # each (line, miner) serves this many tokens per round, in one request


def key(name: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(b"gridmint settlement bench " + name.encode()).digest())


GATEWAY = key("gateway")


def baseline_settle(ctx: Context, msg: MsgSettle) -> None:
    """credit/settle before receipts (main before this change), on the new entry shape: the miner named by its
    key, the amount being the entry's grains, the fee the line's. Nothing else differs."""
    gateway = credit.get_gateway(ctx.state, ctx.signer)
    if msg.batch <= int(gateway["last_batch"]):
        raise credit.BATCH_REPLAYED("batch replayed")
    total = fees_ = 0
    lines: dict[bytes, dict[str, Any]] = {}
    for index, (consumer, miner_key, _tokens, grains, requests, _signature) in enumerate(msg.entries):
        if requests == 0:
            raise credit.EMPTY_ENTRY(f"entry {index}: no request")
        coldkey = neurons.hotkey_owner(ctx.state, address_of(miner_key))
        if coldkey is None:
            raise credit.UNKNOWN_MINER(f"entry {index}: unknown miner")
        key_ = credit.LINE_PREFIX + consumer + ctx.signer
        line = lines.get(key_) or credit.get_line(ctx.state, consumer, ctx.signer)
        fee = credit.compute_fee(grains, int(line["fee_bps"]))
        if grains + fee > line["balance"]:
            raise credit.BEYOND_CREDIT(f"entry {index}: beyond credit")
        line.update(balance=int(line["balance"]) - grains - fee, spent=int(line["spent"]) + grains + fee)
        lines[key_] = line
        bank.release(ctx.state, credit.NAME, coldkey, grains)
        total, fees_ = total + grains, fees_ + fee
    for key_ in sorted(lines):
        ctx.state.set_value(key_, lines[key_])
    if fees_:
        bank.release(ctx.state, credit.NAME, ctx.signer, fees_)
    gateway["last_batch"] = msg.batch
    ctx.state.set_value(credit.GATEWAY_PREFIX + ctx.signer, gateway)
    ctx.emit(credit.Settled(gateway=format_address(ctx.signer), batch=msg.batch, entries=len(msg.entries),
                            paid=total, fee=fees_))


def baseline_modules() -> tuple[ModuleSpec, ...]:
    handlers = {**credit.MODULE.handlers, MsgSettle: baseline_settle}
    return tuple(dataclasses.replace(m, handlers=handlers) if m is credit.MODULE else m for m in MODULES)


class World:
    """One App, driven block by block; transactions signed here with each signer's next nonce."""

    def __init__(self, folder: Path, modules: tuple[ModuleSpec, ...], names: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.app = App(Store(folder / "state.sqlite"), modules)
        authority = key("authority")
        document = make_genesis_document(CHAIN_ID, "2026-01-01T00:00:00Z", [("bench", authority.public_key)],
                                         [(format_address(key(n).address), 100_000 * MINT) for n in names])
        document["app_state"]["subnets"] = {"params": {"min_lock": MINT, "default_tempo": 50_000}}
        self.app.init_chain(validate_genesis(document, MODULES))
        self.height = 0
        self.nonces: dict[bytes, int] = {}

    def tx(self, signer: PrivateKey, *messages: Msg) -> bytes:
        nonce = self.nonces.get(signer.address, 0) + 1
        self.nonces[signer.address] = nonce
        body = TxBody(CHAIN_ID, signer.public_key, nonce, 0, messages)
        fee = fees.get_tx_cost(BlockState(self.app.store), body).fee
        return sign_tx(dataclasses.replace(body, fee=fee), signer)

    def block(self, txs: list[bytes]) -> tuple[float, float, list[Any]]:
        """Run a block of ``txs``: (wall seconds, CPU seconds, results)."""
        self.height += 1
        started, cpu = time.perf_counter(), time.process_time()
        result = self.app.finalize_block(txs, self.height, (1_767_225_600 + self.height) * 10**9, b"\x00" * 20)
        self.app.commit()
        return time.perf_counter() - started, time.process_time() - cpu, result.tx_results

    def setup(self, txs: list[bytes]) -> None:
        """``txs`` in as many blocks as the chain's work budget needs, as a proposer would fill them."""
        while txs:
            block = self.app.fitting(txs, self.height + 1).txs or txs[:1]
            _, _, results = self.block(block)
            failed = [r.log for r in results if not r.ok]
            if failed:
                raise SystemExit(f"setup failed: {failed[0]}")
            txs = [tx for tx in txs if tx not in block]


def build(folder: Path, modules: tuple[ModuleSpec, ...], consumers: list[str], miners: list[str]) -> World:
    world = World(folder, modules, ["owner", "gateway", *consumers, *miners])
    world.setup([world.tx(key("owner"), MsgCreateSubnet("text-generation", "bench"))])
    world.setup([world.tx(key(m), MsgRegister(1, key(f"{m}/hot").address, 0)) for m in miners])
    world.setup([world.tx(GATEWAY, MsgRegisterGateway("https://gateway.example", 100, 10 * MINT))])
    world.setup([world.tx(key(c), MsgOpenCredit(GATEWAY.address, 10_000 * MINT, 1_000_000, PRICE, 100, 0, 0))
                 for c in consumers])
    return world


def round_entries(world: World, consumers: list[str], miners: list[str], round_: int) -> list[list[Any]]:
    """Every (line, miner)'s cumulative receipt after ``round_`` rounds, signed by the miner's hotkey."""
    tokens = TOKENS_PER_ROUND * round_
    grains = tokens * PRICE // 1_000
    entries = []
    view = BlockState(world.app.store)
    for consumer in consumers:
        line_id = int(credit.get_line(view, key(consumer).address, GATEWAY.address)["id"])
        for miner in miners:
            hotkey = key(f"{miner}/hot")
            receipt = Receipt(CHAIN_ID, line_id, GATEWAY.address, key(consumer).address, hotkey.address, tokens,
                              grains, round_)
            entries.append([key(consumer).address, hotkey.public_key, tokens, grains, round_,
                            sign_receipt(hotkey, receipt)])
    return entries


def pack(world: World, entries: list[list[Any]], first_batch: int) -> tuple[list[bytes], list[int]]:
    """The entries in as few settle transactions as max_tx_bytes allows; and each transaction's entry count."""
    limit = TxParams().max_tx_bytes
    txs: list[bytes] = []
    counts: list[int] = []
    start = 0
    while start < len(entries):
        size = min(credit.MAX_ENTRIES, len(entries) - start)
        while True:
            nonce = world.nonces.get(GATEWAY.address, 0)
            raw = world.tx(GATEWAY, MsgSettle(first_batch + len(txs), entries[start:start + size]))
            if len(raw) <= limit:
                break
            world.nonces[GATEWAY.address] = nonce  # not sent: the nonce is free again
            size -= 1
        txs.append(raw)
        counts.append(size)
        start += size
    return txs, counts


RECEIPT_BYTES = len(receipt_message(Receipt(CHAIN_ID, 1, bytes(20), bytes(20), bytes(20), 10**6, 10**9, 10**3),
                                     MINER_DOMAIN))


def verify_rate(count: int = 2_000) -> float:
    """ed25519 verifications per second of a receipt-sized message, as the chain calls them."""
    signer = key("rate")
    receipt = Receipt(CHAIN_ID, 1, bytes(20), bytes(20), signer.address, 10**6, 10**9, 10**3)
    message, signature = receipt_message(receipt, MINER_DOMAIN), sign_receipt(signer, receipt)
    started = time.perf_counter()
    for _ in range(count):
        verify(signer.public_key, message, signature)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--consumers", type=int, default=20)
    parser.add_argument("--miners", type=int, default=50)
    args = parser.parse_args()
    consumers = [f"consumer{i}" for i in range(args.consumers)]
    miners = [f"miner{i}" for i in range(args.miners)]
    folder = Path(tempfile.mkdtemp(prefix="gridmint-settlement-"))
    worlds = {"receipts": build(folder / "receipts", MODULES, consumers, miners),
              "baseline": build(folder / "baseline", baseline_modules(), consumers, miners)}
    timings: dict[str, list[float]] = {"receipts": [], "baseline": [], "empty": []}
    cpu: dict[str, list[float]] = {"receipts": [], "baseline": []}
    counted: dict[str, int] = {"receipts": 0, "baseline": 0}
    transactions = 0
    for round_ in range(1, args.rounds + 1):
        entries = round_entries(worlds["receipts"], consumers, miners, round_)
        txs, counts = pack(worlds["receipts"], entries, first_batch=len(timings["receipts"]) * 1_000 + 1)
        worlds["baseline"].nonces = dict(worlds["receipts"].nonces)  # the same bytes run in both
        transactions = len(txs)
        order = ("receipts", "baseline") if round_ % 2 else ("baseline", "receipts")
        for name in order:
            elapsed, used, results = worlds[name].block(txs)
            failed = [r.log for r in results if not r.ok]
            if failed:
                raise SystemExit(f"{name}, round {round_}: {len(failed)} settlements failed: {failed[0]}")
            timings[name].append(elapsed * 1_000 / sum(counts) * 1_000)
            cpu[name].append(used * 1_000 / sum(counts) * 1_000)
            counted[name] += sum(counts)
        elapsed, _, _ = worlds["receipts"].block([])
        worlds["baseline"].block([])
        timings["empty"].append(elapsed * 1_000)
        if round_ == 1:  # the first round's receipts pay their whole amount, as the baseline does: same balances
            paid = [{m: bank.get_balance(BlockState(w.app.store), key(m).address) for m in miners}
                    for w in worlds.values()]
            if paid[0] != paid[1]:
                raise SystemExit("the two paths paid the miners differently")
    receipts, baseline = statistics.median(timings["receipts"]), statistics.median(timings["baseline"])
    entries_per_block = args.consumers * args.miners
    print(f"credit/settle: {entries_per_block} entries ({args.consumers} lines × {args.miners} miners) in "
          f"{transactions} transactions of ≤ {TxParams().max_tx_bytes} bytes, one block, finalize_block + commit; "
          f"median of {args.rounds} rounds:")
    print(f"  receipts (checked, signed)  : {receipts:8.1f} ms per 1,000 entries  "
          f"(rounds: {', '.join(f'{t:.1f}' for t in timings['receipts'])})")
    print(f"  baseline (before receipts)  : {baseline:8.1f} ms per 1,000 entries  "
          f"(rounds: {', '.join(f'{t:.1f}' for t in timings['baseline'])})")
    print(f"  ratio                       : {receipts / baseline:8.2f}")
    print(f"  CPU time, same blocks       : {statistics.median(cpu['receipts']):8.1f} vs "
          f"{statistics.median(cpu['baseline']):.1f} ms per 1,000 entries")
    print(f"  ed25519 verifications here  : {verify_rate():8.0f}/s (one receipt of {RECEIPT_BYTES} bytes, "
          "measured after the rounds)")
    print(f"  an empty block              : {statistics.median(timings['empty']):8.2f} ms")
    left = credit.get_line(BlockState(worlds["receipts"].app.store), key(consumers[0]).address, GATEWAY.address)
    print(f"  entries counted             : {counted['receipts']} and {counted['baseline']} (all succeeded); a "
          f"line's balance after them: {format_mint(int(left['balance']))}")
    print(json.dumps({"ms_per_1000_entries": round(receipts, 2), "baseline_ms_per_1000_entries": round(baseline, 2),
                      "ratio": round(receipts / baseline, 3), "entries": entries_per_block,
                      "transactions": transactions, "rounds": args.rounds,
                      "cpu_ms_per_1000_entries": round(statistics.median(cpu["receipts"]), 2),
                      "baseline_cpu_ms_per_1000_entries": round(statistics.median(cpu["baseline"]), 2),
                      "empty_block_ms": round(statistics.median(timings["empty"]), 3)}))


if __name__ == "__main__":
    main()
