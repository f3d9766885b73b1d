"""Settling metered usage on chain: a batch every period, and a last one on shutdown.

A batch is sent only when the previous one is confirmed or refused, and its id follows the chain's record of this
gateway's last batch, so a batch is never paid twice and a refused one is retried in the next.
"""

from __future__ import annotations

import asyncio
import logging

from gridmint.chain.credit import MsgSettle
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.units import format_mint
from gridmint.client.chain_client import ChainClient, raise_for_code
from gridmint.gateway.credit import CreditBook
from gridmint.gateway.ledger import Batch, Ledger
from gridmint.gateway.metrics import GatewayMetrics

log = logging.getLogger("gridmint.gateway")


def last_batch_on_chain(client: ChainClient, gateway: str) -> int:
    for entry in client.query("/credit/gateways"):
        if entry["gateway"] == gateway:
            return int(entry["last_batch"])
    return 0


def settle_once(client: ChainClient, key: PrivateKey, ledger: Ledger, credit: CreditBook | None = None,
                metrics: GatewayMetrics | None = None) -> Batch | None:
    """Send one batch of everything unsettled; returns it once the chain paid it, None if nothing was owed."""
    gateway = format_address(key.address)
    ledger.recover(last_batch_on_chain(client, gateway))
    batch = ledger.next_batch(after=last_batch_on_chain(client, gateway))
    if batch is None:
        return None
    try:
        fee = int(client.query("/bank/params")["min_tx_fee"])
        outcome = client.send(key, [MsgSettle(batch.id, batch.entries)], fee)
        raise_for_code(outcome.code, outcome.codespace, outcome.log)
    except ChainError as error:
        ledger.release(batch.id)
        log.warning("The chain refused settlement batch %d (%s); its usage goes into the next batch.", batch.id,
                    error)
        raise
    ledger.confirm(batch.id)
    if credit is not None:
        for consumer in {format_address(entry[0]) for entry in batch.entries if isinstance(entry[0], bytes)}:
            credit.forget(consumer)
    if metrics is not None:
        metrics.settled.inc(batch.grains)
    log.info("Settled batch %d in block %d: %d entries, %s to miners and %s in fees.", batch.id, outcome.height,
             len(batch.entries), format_mint(batch.grains), format_mint(batch.fee))
    return batch


async def settle_forever(client: ChainClient, key: PrivateKey, ledger: Ledger, credit: CreditBook,
                         metrics: GatewayMetrics, every_s: float) -> None:
    """Settle every ``every_s``; when cancelled (shutdown), settle what is left once more before stopping."""
    try:
        while True:
            await asyncio.sleep(every_s)
            metrics.unsettled.set(ledger.unsettled())
            try:
                await asyncio.to_thread(settle_once, client, key, ledger, credit, metrics)
            except (ChainError, OSError) as error:
                log.warning("Settlement failed: %s", error)
    except asyncio.CancelledError:
        try:
            await asyncio.to_thread(settle_once, client, key, ledger, credit, metrics)
        except (ChainError, OSError) as error:
            log.warning("The last settlement before shutdown failed (%s); the usage stays in the ledger for the "
                        "next start.", error)
        raise
