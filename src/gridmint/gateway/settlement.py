"""Settling metered usage on chain: a batch every period, and a last one on shutdown.

A batch is sent only when the previous one is confirmed or refused, and its id follows the chain's record of this
gateway's last batch. A batch whose outcome is unknown is sent again unchanged (the chain refuses a copy of a
batch it paid), so usage is never paid twice and never lost; a refused batch's usage goes into the next one.
"""

from __future__ import annotations

import asyncio
import logging

from gridmint.chain.credit import BATCH_REPLAYED, MsgSettle
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.units import format_mint
from gridmint.client.chain_client import ChainClient
from gridmint.gateway.credit import CreditBook, read_line
from gridmint.gateway.ledger import Batch, Ledger
from gridmint.gateway.metrics import GatewayMetrics

log = logging.getLogger("gridmint.gateway")


def last_batch_on_chain(client: ChainClient, gateway: str) -> int:
    for entry in client.query("/credit/gateways"):
        if entry["gateway"] == gateway:
            return int(entry["last_batch"])
    return 0


def line_balances(client: ChainClient, gateway: str, consumers: list[str]) -> dict[str, int]:
    """What each consumer's credit line with this gateway holds now (0 without a line). Past its expiry a line
    still pays for the usage before it, so the balance counts, not the expiry."""
    return {consumer: line[0] if (line := read_line(client, consumer, gateway)) else 0 for consumer in consumers}


def _send_batch(client: ChainClient, key: PrivateKey, batch: Batch) -> int:
    return client.execute(key, [MsgSettle(batch.id, batch.entries)]).height


async def settle(client: ChainClient, key: PrivateKey, ledger: Ledger, credit: CreditBook | None = None,
                 metrics: GatewayMetrics | None = None) -> Batch | None:
    """Send one batch of the unsettled usage that the consumers' lines can pay; returns it once the chain paid it,
    None if there was nothing to send.
    The ledger is only touched on the event loop's thread; the chain is called from a worker thread."""
    gateway = format_address(key.address)
    last = await asyncio.to_thread(last_batch_on_chain, client, gateway)
    ledger.recover(last)
    limits = None
    if ledger.pending_batch() is None:
        limits = await asyncio.to_thread(line_balances, client, gateway, ledger.unbatched_consumers())
    batch = ledger.next_batch(after=last, limits=limits)
    if batch is None:
        return None
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
    if limits is not None:
        _warn_of_usage_beyond_lines(ledger, limits, batch)
    return batch


def _warn_of_usage_beyond_lines(ledger: Ledger, limits: dict[str, int], batch: Batch) -> None:
    for consumer in ledger.unbatched_consumers():
        excess = ledger.owed(consumer) - (limits.get(consumer, 0) - batch.charges.get(consumer, 0))
        if excess > 0:
            log.warning("%s has used %s more than its credit line holds; that usage stays owed until the line is "
                        "topped up.", consumer, format_mint(excess))


async def settle_forever(client: ChainClient, key: PrivateKey, ledger: Ledger, credit: CreditBook,
                         metrics: GatewayMetrics, every_s: float) -> None:
    """Settle every ``every_s``; when cancelled (shutdown), settle what is left once more before stopping."""
    try:
        while True:
            await asyncio.sleep(every_s)
            metrics.unsettled.set(ledger.unsettled())
            try:
                await settle(client, key, ledger, credit, metrics)
            except (ChainError, OSError) as error:
                log.warning("Settlement failed: %s", error)
    except asyncio.CancelledError:
        try:
            await settle(client, key, ledger, credit, metrics)
        except (ChainError, OSError) as error:
            log.warning("The last settlement before shutdown failed (%s); the usage stays in the ledger for the "
                        "next start.", error)
        raise
