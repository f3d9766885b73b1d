"""Tokens per second of the ``transformers`` backend: through the miner's signed HTTP endpoint vs. calling the
backend directly, in the same run (the baseline). Goal: the miner path keeps ≥ 95% of the direct rate.

The model is a randomly initialised Llama of about 1.1B parameters (``--size 1b``; ``--size tiny`` for a smoke run
on a CPU) with a byte-level BPE tokenizer trained here, saved to a temporary folder: nothing comes from a hub. Both
paths generate exactly ``--tokens`` tokens per request (end-of-sequence ignored), one request at a time, greedy.
The miner runs in its own process, loading the same folder; the direct path runs first and frees the GPU.

    python bench/transformers_gpu.py [--size 1b] [--tokens 256] [--requests 8]

Needs torch and transformers (the ``torch`` extra; GPU machines usually have both). The last line is JSON:
{"direct_tokens_per_s", "miner_tokens_per_s", "ratio", "size", "device", "tokens", "requests"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.inference.backends.base import Generation
from gridmint.inference.client import MinerClient
from gridmint.ports import free_port

MINER_SEED, CALLER_SEED = b"\x31" * 32, b"\x32" * 32
SIZES = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "1b": (2048, 5632, 16, 32, 8, 32_000),
    "tiny": (64, 128, 2, 4, 2, 1_000),
}
PROMPT = "Write a long story about a lighthouse keeper who learns to repair radios during a winter storm."

MINER_MAIN = """
import sys
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.inference.backends.transformers import TransformersBackend
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.miner.server import serve_miner
from gridmint.inference.protocol import CallerPolicy
caller = PrivateKey(bytes.fromhex(sys.argv[3]))
app = MinerApp(PrivateKey(bytes.fromhex(sys.argv[2])), TransformersBackend(sys.argv[1], ignore_eos=True),
               CallerPolicy(validators={format_address(caller.address)}), max_concurrency=4)
serve_miner(app, "127.0.0.1", int(sys.argv[4]))
"""


def build_model(folder: Path, size: str) -> str:
    """A random Llama and a tokenizer trained on a few sentences, saved as a local model folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    hidden, intermediate, layers, heads, kv_heads, vocab = SIZES[size]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = [PROMPT, "the quick brown fox jumps over the lazy dog", "radios hum in the storm at night"] * 50
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=min(vocab, 2_000),
                                                              special_tokens=["<s>", "</s>", "<pad>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(folder)
    config = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                         max_position_embeddings=4096, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters"


async def direct_rate(folder: Path, tokens: int, requests: int) -> tuple[float, str]:
    import torch

    from gridmint.inference.backends.transformers import TransformersBackend

    backend = TransformersBackend(str(folder), ignore_eos=True)
    request = Generation(backend.model_name, prompt=PROMPT, max_tokens=tokens)
    await backend.generate(request)  # warm up kernels and caches
    produced, started = 0, time.perf_counter()
    for _ in range(requests):
        produced += (await backend.generate(request)).completion_tokens
    rate = produced / (time.perf_counter() - started)
    device = backend.device
    del backend
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rate, device


async def miner_rate(folder: Path, tokens: int, requests: int) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    miner = format_address(PrivateKey(MINER_SEED).address)
    process = subprocess.Popen([sys.executable, "-c", MINER_MAIN, str(folder), MINER_SEED.hex(), CALLER_SEED.hex(),
                                str(port)], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise SystemExit("the miner exited while loading the model")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the miner did not start")
            time.sleep(0.5)
        payload = {"model": folder.name.lower(), "prompt": PROMPT, "max_tokens": tokens, "temperature": 0}
        async with MinerClient(PrivateKey(CALLER_SEED), timeout_s=600, allow=[f"127.0.0.1:{port}"]) as client:
            await client.call(url, "/v1/completions", miner, payload)  # warm up
            produced, started = 0, time.perf_counter()
            for _ in range(requests):
                answer = await client.call(url, "/v1/completions", miner, payload)
                if answer.status != 200 or not answer.signed:
                    raise SystemExit(f"the miner answered {answer.status} (signed: {answer.signed})")
                produced += int(answer.json()["usage"]["completion_tokens"])
            return produced / (time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1b")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / f"random-llama-{args.size}"
        print(f"model: random Llama, {build_model(folder, args.size)}", flush=True)
        direct, device = asyncio.run(direct_rate(folder, args.tokens, args.requests))
        print(f"direct (backend.generate on {device}): {direct:8.1f} tokens/s", flush=True)
        through_miner = asyncio.run(miner_rate(folder, args.tokens, args.requests))
        print(f"through the miner (signed HTTP):       {through_miner:8.1f} tokens/s")
    ratio = through_miner / direct
    print(f"ratio miner / direct: {ratio:.3f} (goal ≥ 0.95)")
    print(json.dumps({"direct_tokens_per_s": round(direct, 1), "miner_tokens_per_s": round(through_miner, 1),
                      "ratio": round(ratio, 4), "size": args.size, "device": device, "tokens": args.tokens,
                      "requests": args.requests}))


if __name__ == "__main__":
    main()
