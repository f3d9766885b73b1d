"""The official `openai` package, unchanged (only base_url and api_key set), through the gateway to real miners:
SmolLM2 through llama.cpp on a text-generation subnet and wordllama on an embedding subnet. Then the money: what
was metered is settled on chain, and the consumer's line, each miner's coldkey and the gateway moved by exactly
that, to the grain."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import openai
import pytest

from gridmint.chain.credit import compute_fee
from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from tests.support.gateway_network import ledger_rows, start_gateway, start_miner, wait_for_models, wait_until_settled
from tests.support.live_subnet import fees_paid, live_subnet

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

SMOLLM2 = "smollm2-135m-instruct"
FEE_BPS = 100


def test_the_openai_client_talks_to_real_miners_and_the_usage_is_settled_to_the_grain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("owner", "val", "smol", "embed", "gw", "consumer")
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=50_000,
                     permit=False) as live:
        live.run("subnet", "create", "--modality", "embedding", "--name", "embeddings", "--wallet", "owner")
        live.run("subnet", "register", "2", "--wallet", "embed")
        gateway = start_gateway(tmp_path, "gw", "--fee-bps", str(FEE_BPS), miners=("smol", "embed"))
        smol = start_miner(tmp_path, "smol", 1, "llama-cpp", "0.002")
        embed = start_miner(tmp_path, "embed", 2, "wordllama", "0.0005")
        try:
            consumer = open_wallet("consumer", live.wallets).address
            live.run("credit", "open", gateway.url, "50", "--blocks", "100000", "--wallet", "consumer")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            listed = wait_for_models(gateway, SMOLLM2, "wordllama-l2_supercat-256", "subnet-1", "subnet-2")
            with ChainClient(live.node.url) as chain:
                before = chain.height()
            assert {m["id"]: m["modality"] for m in listed}["subnet-2"] == "embedding"

            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0, timeout=120)
            chat = client.chat.completions.create(
                model=SMOLLM2, messages=[{"role": "user", "content": "What is the capital of France?"}],
                max_tokens=24, temperature=0)
            assert chat.choices[0].message.content and chat.usage is not None and chat.usage.completion_tokens > 0

            pieces = []
            with client.chat.completions.create(model=SMOLLM2, stream=True, max_tokens=24,
                                                messages=[{"role": "user", "content": "Name three colours."}]) as s:
                for chunk in s:
                    if chunk.choices and chunk.choices[0].delta.content:
                        pieces.append(chunk.choices[0].delta.content)
            assert len(pieces) > 1 and "".join(pieces).strip()

            completion = client.completions.create(model=SMOLLM2, prompt="The sky is", max_tokens=8)
            assert completion.choices[0].text

            embeddings = client.embeddings.create(model="wordllama-l2_supercat-256",
                                                  input=["a cat on a mat", "a kitten on a rug"])
            assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) == 256
            by_subnet = client.embeddings.create(model="subnet-2", input="routing by subnet")
            assert len(by_subnet.data[0].embedding) == 256

            # Money: wait until every metered request is in a batch the chain confirmed, then compare the chain
            # with the ledger.
            wait_until_settled(tmp_path, 5, gateway)
            with ChainClient(live.node.url) as chain:
                groups: dict[tuple[int | None, str], int] = defaultdict(int)
                for row_consumer, miner, grains, batch, _ in ledger_rows(tmp_path):
                    assert row_consumer == consumer
                    groups[(batch, miner)] += grains
                paid: dict[str, int] = defaultdict(int)
                for (_, miner), grains in groups.items():
                    paid[miner] += grains
                fees = sum(compute_fee(grains, FEE_BPS) for grains in groups.values())
                gateway_address = open_wallet("gw", live.wallets).address
                line = chain.query(f"/credit/line/{consumer}/{gateway_address}")
                # The consumer's line went down by exactly what was metered plus the gateway's posted fee ...
                assert line["spent"] == sum(paid.values()) + fees > 0
                assert line["balance"] == 50 * 10**9 - line["spent"]
                # ... each miner's coldkey went up by exactly its share (nothing else pays them: no epoch ends
                # during the test) ...
                for name in ("smol", "embed"):
                    hotkey = open_wallet(name, live.wallets).hotkey_address("default")
                    coldkey = open_wallet(name, live.wallets).address
                    assert paid[hotkey] > 0
                    assert chain.balance(coldkey) - chain.balance(coldkey, height=before) == paid[hotkey]
                # ... and the gateway by its fees, less the fees of its own settlement transactions.
                now = chain.height()
                settlements = chain.nonce(gateway_address, height=now) - chain.nonce(gateway_address, height=before)
                gained = chain.balance(gateway_address, height=now) - chain.balance(gateway_address, height=before)
                assert settlements >= 1 and gained == fees - fees_paid(chain, gateway_address, before, now)
        finally:
            for process in (smol, embed, gateway):
                process.stop()

