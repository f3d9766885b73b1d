"""``wordllama``: static token embeddings (numpy only) from the model the ``wordllama`` package ships.

Loaded with the package's own folder as the cache and downloads disabled, so it never reaches a hub.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

from gridmint.inference.backends.base import (
    EMBEDDING,
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
    UnsupportedError,
)

WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIM = 256


class WordLlamaBackend:
    name = "wordllama"
    modality = EMBEDDING

    def __init__(self, config: str = WORDLLAMA_CONFIG, dim: int = WORDLLAMA_DIM) -> None:
        from wordllama import WordLlama  # imported here: only embedding miners need it

        spec = importlib.util.find_spec("wordllama")
        if spec is None or spec.origin is None:
            raise FileNotFoundError("the wordllama package is not installed")
        self.model = f"wordllama-{config}-{dim}"
        self.wordllama = WordLlama.load(config=config, dim=dim, cache_dir=Path(spec.origin).parent,
                                        disable_download=True)

    def models(self) -> list[str]:
        return [self.model]

    def _embed(self, inputs: list[str]) -> EmbeddingResult:
        vectors = self.wordllama.embed(inputs, norm=True)
        tokens = sum(len(self.wordllama.tokenizer.encode(text).ids) for text in inputs)
        return EmbeddingResult([[float(x) for x in row] for row in vectors.tolist()], tokens)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        return await asyncio.to_thread(self._embed, inputs)

    async def generate(self, request: Generation) -> GenerationResult:
        raise UnsupportedError("the wordllama backend serves embeddings, not text generation")

    def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        raise UnsupportedError("the wordllama backend serves embeddings, not text generation")
