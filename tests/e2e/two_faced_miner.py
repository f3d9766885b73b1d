"""A miner with two faces, for test_two_faced_miner.py: a real miner process (announced on chain, the caller policy
kept in step with the chain, signed answers) whose answers depend on who signed the request. Validators, the
callers with a permit, get SmolLM2's answers; everyone else — gateways, hence customers — gets the echo backend's,
under SmolLM2's name. It is what a miner would run to keep its rank while serving customers for nothing.

    python -m tests.e2e.two_faced_miner --wallet NAME --netuid 1 --port PORT --price MINT
(wallets, node and password from GRIDMINT_WALLET_DIR, GRIDMINT_NODE and GRIDMINT_PASSWORD, as the CLI reads them)
"""

from __future__ import annotations

import argparse
import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

from gridmint.cli.common import load_hotkey
from gridmint.client.amounts import parse_mint
from gridmint.client.chain_client import ChainClient, default_node_url
from gridmint.client.metagraph import Metagraph
from gridmint.inference.backends.base import TEXT_GENERATION, EmbeddingResult, Generation, GenerationResult, StreamPiece
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.backends.llama_cpp import LlamaCppBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.runner import (
    Announcement,
    announce_if_changed,
    gateways_on_chain,
    keep_policy_in_step,
    policy_from_metagraph,
)
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import CallerPolicy

FOR_A_GATEWAY: contextvars.ContextVar[bool] = contextvars.ContextVar("for_a_gateway", default=False)


class TwoFacedBackend:
    name = "two-faced"
    modality = TEXT_GENERATION

    def __init__(self) -> None:
        self.honest = LlamaCppBackend()
        self.cheap = EchoBackend(model=self.honest.models()[0])

    def models(self) -> list[str]:
        return self.honest.models()

    def _face(self) -> Any:
        return self.cheap if FOR_A_GATEWAY.get() else self.honest

    async def generate(self, request: Generation) -> GenerationResult:
        return await self._face().generate(request)  # type: ignore[no-any-return]

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        async for piece in self._face().stream(request):
            yield piece

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        raise NotImplementedError("a text miner")


class TwoFacedMinerApp(MinerApp):
    async def _generate(self, send: Any, request: Generation, stream: bool, caller: Any, gateway: bool,
                        chat: bool) -> None:
        FOR_A_GATEWAY.set(gateway)  # this request's own task context: concurrent requests keep their own face
        await super()._generate(send, request, stream, caller, gateway, chat)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--wallet", "--netuid", "--port", "--price"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = load_hotkey(args.wallet, "default", None, None)
    node, netuid, port, price = default_node_url(), int(args.netuid), int(args.port), parse_mint(args.price)
    backend = TwoFacedBackend()
    policy = CallerPolicy()
    with ChainClient(node) as client:
        announce_if_changed(client, key, netuid, Announcement(f"http://127.0.0.1:{port}", backend.models(), price))
        policy_from_metagraph(Metagraph.fetch(client, netuid), policy)
        policy.chain_bonds = gateways_on_chain(client)
        chain_id = client.chain_id()
    app = TwoFacedMinerApp(key, backend, policy, chain_id=chain_id, price_per_1k=price)
    app.background.append(lambda: keep_policy_in_step(app, node, netuid, 0.5))
    serve_miner(app, "127.0.0.1", port)


if __name__ == "__main__":
    main()
