"""Settling metered usage on chain with the miners' signed receipts: a batch every period, a last one on shutdown.

One period: unbatched usage is grouped per (line, miner), taken oldest first and per line only as far as the line
can pay (its balance and what its cap leaves, the fee at the line's own rate: the chain refuses a whole batch for
one entry beyond its line); each group is added to the last receipt settled for its (line, miner), giving the new
cumulative receipt, which the gateway acknowledges and asks the miner to sign (``miner_receipts``). The receipts
the miners signed make the batch, persisted with their signatures before it is sent (``ledger``); a miner that
does not answer or refuses leaves its usage for the next period.

A batch is sent only when the previous one is confirmed or refused, and its id follows the chain's record of this
gateway's last batch. A batch whose outcome is unknown is sent again unchanged (the chain refuses a copy of a
batch it paid), so usage is never paid twice and never lost; a refused batch's usage goes into the next one.
The loop survives any exception and says what failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gridmint.chain.credit import BATCH_REPLAYED, MAX_ENTRIES, MsgSettle, compute_fee
from gridmint.chain.credit import spendable as line_spendable
from gridmint.chain.crypto import PrivateKey, format_address, parse_address
from gridmint.chain.errors import ChainError
from gridmint.chain.receipts import Receipt
from gridmint.chain.units import format_mint
from gridmint.client.chain_client import ChainClient
from gridmint.gateway import miner_receipts
from gridmint.gateway.credit import CreditBook, Line, read_line
from gridmint.gateway.ledger import Batch, Entry, Group, Ledger
from gridmint.gateway.metrics import GatewayMetrics
from gridmint.inference.address_guard import AddressGuard
from gridmint.inference.http import HttpPool

log = logging.getLogger("gridmint.gateway")

Locate = Callable[[str], "str | None"]  # a miner's hotkey -> its announced URL (None: not announced any more)


def last_batch_on_chain(client: ChainClient, gateway: str) -> int:
    for entry in client.query("/credit/gateways"):
        if entry["gateway"] == gateway:
            return int(entry["last_batch"])
    return 0


@dataclass(frozen=True)
class ChainView:
    chain_id: str
    height: int
    lines: dict[str, Line]  # consumer -> its line with this gateway (absent: none)
    # (line id, miner hotkey) -> [tokens, grains, requests] the chain has paid, by settlements and miners' claims
    paid: dict[tuple[int, str], tuple[int, int, int]] = field(default_factory=dict)


def _view(client: ChainClient, gateway: str, consumers: list[str]) -> ChainView:
    lines = {consumer: line for consumer in consumers if (line := read_line(client, consumer, gateway))}
    paid = {(line.id, str(p["miner"])): (int(p["tokens"]), int(p["grains"]), int(p["requests"]))
            for line in lines.values() for p in client.query(f"/credit/paid/{line.id}")}
    return ChainView(client.chain_id(), client.height(), lines, paid)


def _already_paid(view: ChainView, entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """``entries`` split into those the chain would pay (newer than what it paid on their (line, miner), its own
    rule) and those it has paid in full already: a miner claimed a receipt the gateway acknowledged before the
    gateway's batch landed. Sent, one of the latter would have the whole batch refused (``receipt_stale``), again
    every period. An entry neither newer nor covered (which the gateway's own cumulative counts cannot give) is
    left out, its usage kept."""
    fresh, paid = [], []
    for entry in entries:
        tokens, grains, requests = view.paid.get((entry.line, entry.miner), (0, 0, 0))
        if entry.grains > grains and entry.tokens >= tokens and entry.requests > requests:
            fresh.append(entry)
        elif entry.grains <= grains and entry.tokens <= tokens and entry.requests <= requests:
            paid.append(entry)
        else:
            log.warning("The receipt for line %d and miner %s (tokens %d, grains %d, requests %d) is neither newer "
                        "than what the chain paid (%d, %d, %d) nor covered by it; its usage is kept, not sent.",
                        entry.line, entry.miner, entry.tokens, entry.grains, entry.requests, tokens, grains,
                        requests)
    return fresh, paid


@dataclass(frozen=True)
class Planned:
    group: Group
    last_row: int
    receipt: Receipt
    delta: int
    fee: int


def plan(ledger: Ledger, gateway: bytes, view: ChainView) -> list[Planned]:
    """The cumulative receipts to ask for: each (line, miner)'s unbatched usage, oldest first, as far as its line
    can pay; at most ``MAX_ENTRIES``. Usage on a line that is gone (reclaimed; a line opened since has a new id)
    can never be settled and is skipped."""
    room = {consumer: line_spendable(line.record, view.height) for consumer, line in view.lines.items()}
    planned: list[Planned] = []
    for group in ledger.unbatched():
        if len(planned) == MAX_ENTRIES:
            break
        line = view.lines.get(group.consumer)
        if line is None or line.id != group.line:
            continue
        tokens = grains = requests = last_row = 0
        for row_id, row_tokens, row_grains in group.rows:  # the oldest rows that fit, with the line's fee
            if grains + row_grains + compute_fee(grains + row_grains, line.fee_bps) > room[group.consumer]:
                break
            tokens, grains, requests, last_row = tokens + row_tokens, grains + row_grains, requests + 1, row_id
        if not requests:
            continue
        fee = compute_fee(grains, line.fee_bps)
        room[group.consumer] -= grains + fee
        held = ledger.held(group.line, group.miner).plus(tokens, grains, requests)
        receipt = Receipt(view.chain_id, group.line, gateway, parse_address(group.consumer),
                          parse_address(group.miner), held.tokens, held.grains, held.requests)
        planned.append(Planned(group, last_row, receipt, grains, fee))
    return planned


async def collect_signatures(pool: HttpPool, key: PrivateKey, locate: Locate, chain_id: str,
                             planned: list[Planned]) -> list[Entry]:
    """Each miner asked (all at once) to sign its receipts; the entries it signed, in the planned order."""
    by_miner: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(planned):
        by_miner[item.group.miner].append(index)
    signed: dict[int, miner_receipts.Signed] = {}

    async def one(miner: str, indexes: list[int]) -> None:
        url = locate(miner)
        if url is None:
            log.warning("Miner %s announces no endpoint now; its usage waits until it does.", miner)
            return
        for start in range(0, len(indexes), miner_receipts.MAX_PER_CALL):
            chunk = indexes[start:start + miner_receipts.MAX_PER_CALL]
            outcomes = await miner_receipts.ask(pool, key, url, miner, chain_id, [planned[i].receipt for i in chunk])
            for index, outcome in zip(chunk, outcomes, strict=True):
                if outcome.signed is not None:
                    signed[index] = outcome.signed

    await asyncio.gather(*(one(miner, indexes) for miner, indexes in sorted(by_miner.items())))
    entries = []
    for index in sorted(signed):
        item, proof = planned[index], signed[index]
        r = item.receipt
        entries.append(Entry(item.group.consumer, item.group.line, item.group.miner, proof.miner_key, r.tokens,
                             r.grains, r.requests, proof.signature, item.delta, item.fee, item.last_row))
    return entries


def _send_batch(client: ChainClient, key: PrivateKey, batch: Batch) -> int:
    return client.execute(key, [MsgSettle(batch.id, batch.settled)]).height


async def settle(client: ChainClient, key: PrivateKey, ledger: Ledger, locate: Locate, pool: HttpPool,
                 credit: CreditBook | None = None, metrics: GatewayMetrics | None = None) -> Batch | None:
    """Send one batch: the pending one again if its fate is unknown, else the receipts the miners sign now for the
    usage the lines can pay. Returns it once the chain paid it, None if there was nothing to send.
    The ledger is only touched on the event loop's thread; the chain is called from a worker thread."""
    gateway = format_address(key.address)
    last = await asyncio.to_thread(last_batch_on_chain, client, gateway)
    ledger.recover(last)
    batch = ledger.pending_batch()
    if batch is None:
        groups = ledger.unbatched()
        if not groups:
            return None
        view = await asyncio.to_thread(_view, client, gateway, sorted({g.consumer for g in groups}))
        planned = plan(ledger, key.address, view)
        entries = await collect_signatures(pool, key, locate, view.chain_id, planned) if planned else []
        entries, claimed = _already_paid(view, entries)
        if claimed:
            log.info("%d receipts were paid on chain by the miners' own claims; their usage is settled.",
                     len(claimed))
            for consumer, charged in sorted(ledger.paid_by_claim(claimed).items()):
                if credit is not None:
                    credit.settled(consumer, charged)
        _warn_of_usage_left(ledger, view, planned)
        if not entries:
            return None
        batch = ledger.open_batch(ledger.next_batch_id(last), entries)
    try:
        height = await asyncio.to_thread(_send_batch, client, key, batch)
    except ChainError as error:
        if error.kind == BATCH_REPLAYED:  # an earlier copy of this very batch landed
            ledger.recover(await asyncio.to_thread(last_batch_on_chain, client, gateway))
            if ledger.pending_batch() is None:
                log.info("Settlement batch %d had already landed.", batch.id)
                return batch
        elif error.kind.module != "client":  # executed (or checked) and refused: it can never land
            ledger.release(batch.id)
            log.warning("The chain refused settlement batch %d (%s); its usage goes into the next batch.",
                        batch.id, error)
        else:  # the outcome is unknown: keep the batch as it is and send it again
            log.warning("Settlement batch %d: %s; it will be sent again unchanged.", batch.id, error)
        raise
    ledger.confirm(batch.id)
    if credit is not None:
        for consumer, charged in sorted(batch.charges.items()):
            credit.settled(consumer, charged)
    if metrics is not None:
        metrics.settled.inc(batch.grains)
    log.info("Settled batch %d in block %d: %d entries, %s to miners and %s in fees.", batch.id, height,
             len(batch.entries), format_mint(batch.grains), format_mint(batch.fee))
    return batch


def _warn_of_usage_left(ledger: Ledger, view: ChainView, planned: list[Planned]) -> None:
    taken = {(p.group.consumer, p.group.line, p.group.miner) for p in planned}
    for group in ledger.unbatched():
        key = (group.consumer, group.line, group.miner)
        line = view.lines.get(group.consumer)
        if line is None or line.id != group.line:
            log.warning("%s's usage on line %d (%s to %s) cannot be settled: the line is gone.", group.consumer,
                        group.line, format_mint(sum(g for _, _, g in group.rows)), group.miner)
        elif key not in taken:
            log.warning("%s has used more than its credit line can pay now; that usage stays owed until the line is "
                        "topped up (or its cap's next period).", group.consumer)


async def settle_forever(client: ChainClient, key: PrivateKey, ledger: Ledger, locate: Locate, credit: CreditBook,
                         metrics: GatewayMetrics, every_s: float, allow: Iterable[str] = ()) -> None:
    """Settle every ``every_s``; when cancelled (shutdown), settle what is left once more before stopping. No
    exception ends the loop: each is logged with what failed, and the next period tries again. Miners are reached
    through an ``AddressGuard`` with the operator's ``allow`` list, as the gateway's calls are."""
    pool = HttpPool(max_per_host=4, guard=AddressGuard(allow))
    try:
        while True:
            await asyncio.sleep(every_s)
            try:
                metrics.unsettled.set(ledger.unsettled())
                await settle(client, key, ledger, locate, pool, credit, metrics)
            except (ChainError, OSError) as error:
                log.warning("Settlement failed: %s", error)
            except Exception:
                log.exception("Settlement failed unexpectedly; the usage stays in the ledger for the next period")
    except asyncio.CancelledError:
        try:
            await settle(client, key, ledger, locate, pool, credit, metrics)
        except Exception as error:
            log.warning("The last settlement before shutdown failed (%s); the usage stays in the ledger for the "
                        "next start.", error)
        raise
    finally:
        pool.close()
