"""Running a miner for real: announce the endpoint on chain, keep the caller policy (and the gateways' bonds) in
step with the chain, claim what gateways acknowledged and did not settle, and serve. Used by ``gridmint miner
run``."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.neurons import NOT_REGISTERED
from gridmint.chain.subnets import MsgAnnounceEndpoint
from gridmint.client.chain_client import ChainClient
from gridmint.client.metagraph import Metagraph
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.book import ReceiptBook
from gridmint.inference.miner.claims import CLAIMED, LINE_GONE, PAID, REFUSED, claim, review_receipts
from gridmint.inference.protocol import CallerPolicy

log = logging.getLogger("gridmint.miner")
PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Announcement:
    url: str
    models: list[str]
    price_per_1k: int


def announce_if_changed(client: ChainClient, key: PrivateKey, netuid: int, wanted: Announcement) -> bool:
    """Put the endpoint on chain unless the chain already holds exactly this one; True if a tx was sent."""
    graph = Metagraph.fetch(client, netuid)
    uid = graph.uid_of(format_address(key.address))
    if uid is None:
        raise NOT_REGISTERED(f"hotkey {format_address(key.address)} is not registered on subnet "
                             f"{netuid}; run `gridmint subnet register {netuid}` first")
    current = graph.endpoints[uid]
    if current is not None and (current["url"], current["models"], current["price_per_1k"]) == (
            wanted.url, wanted.models, wanted.price_per_1k):
        log.info("The chain already announces %s for UID %d on subnet %d.", wanted.url, uid, netuid)
        return False
    outcome = client.execute(key, [MsgAnnounceEndpoint(netuid, wanted.url, wanted.models, wanted.price_per_1k,
                                                       PROTOCOL_VERSION)])
    log.info("Announced %s (%s) for UID %d on subnet %d in block %d.", wanted.url, ", ".join(wanted.models), uid,
             netuid, outcome.height)
    return True


def policy_from_metagraph(graph: Metagraph, policy: CallerPolicy) -> None:
    permits = graph.vectors["permit"]
    policy.update(set(graph.hotkeys), {hotkey for uid, hotkey in enumerate(graph.hotkeys) if permits[uid]})


def gateways_on_chain(client: ChainClient) -> dict[str, int]:
    """The gateways registered on chain (their keys sign the requests they forward) and the bond each holds."""
    return {str(entry["gateway"]): int(entry["bond"]) for entry in client.query("/credit/gateways")}


async def keep_policy_in_step(app: MinerApp, node_url: str, netuid: int, every_s: float) -> None:
    """Refresh who may call, and the gateways' bonds, from the chain, forever (errors are logged, not fatal)."""
    with ChainClient(node_url) as client:
        while True:
            try:
                graph = await asyncio.to_thread(Metagraph.fetch, client, netuid)
                before = len(app.policy.validators)
                policy_from_metagraph(graph, app.policy)
                app.policy.chain_bonds = await asyncio.to_thread(gateways_on_chain, client)
                if len(app.policy.validators) != before:
                    log.info("Subnet %d now has %d validators with a permit that may call.", netuid,
                             len(app.policy.validators))
            except (ChainError, OSError) as error:
                log.warning("Could not refresh the metagraph of subnet %d: %s", netuid, error)
            await asyncio.sleep(every_s)



async def claim_forever(book: ReceiptBook, node_url: str, key: PrivateKey, every_s: float) -> None:
    """Every ``every_s``, claim on chain the receipts signed more than ``every_s`` ago that are still unpaid (see
    claims.py); the book is read and marked on the event loop, the chain called from a worker thread."""
    with ChainClient(node_url) as client:
        while True:
            await asyncio.sleep(every_s)
            try:
                due = book.stored(due_before=time.time() - every_s)
                if not due:
                    continue
                reviews = await asyncio.to_thread(review_receipts, client, book.miner, due)
                await asyncio.to_thread(claim, client, key, key.public_key, reviews)
                book.mark_done([r.signed for r in reviews if r.state in (PAID, LINE_GONE, CLAIMED)])
                for item in reviews:
                    receipt = item.signed.receipt
                    if item.state == CLAIMED:
                        log.info("Claimed line %d's receipt from gateway %s (%d grains in all) in block %d: the "
                                 "gateway had not settled it.", receipt.line, format_address(receipt.gateway),
                                 receipt.grains, item.height)
                    elif item.state == REFUSED:
                        log.warning("The chain refused the claim of line %d's receipt from gateway %s: %s",
                                    receipt.line, format_address(receipt.gateway), item.error)
            except Exception as error:  # a claim round must never stop the miner; say what failed, try again later
                log.warning("A claim round failed (%s: %s); the next one is in %g s.", type(error).__name__, error,
                            every_s)
