"""``wordllama``: static token embeddings (numpy only) from the model the ``wordllama`` package ships.

Loaded with the package's own folder as the cache and downloads disabled, so it never reaches a hub.
"""

from __future__ import annotations

import asyncio

from gridmint.inference.backends.base import EMBEDDING, EmbeddingOnly, EmbeddingResult, installed_package_folder

WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIM = 256


class WordLlamaBackend(EmbeddingOnly):
    name = "wordllama"
    modality = EMBEDDING

    def __init__(self, config: str = WORDLLAMA_CONFIG, dim: int = WORDLLAMA_DIM) -> None:
        from wordllama import WordLlama  # imported here: only embedding miners need it

        folder = installed_package_folder("wordllama", "pip install 'gridmint[models]'")
        self.model = f"wordllama-{config}-{dim}"
        self.wordllama = WordLlama.load(config=config, dim=dim, cache_dir=folder, disable_download=True)

    def models(self) -> list[str]:
        return [self.model]

    def _embed(self, inputs: list[str]) -> EmbeddingResult:
        vectors = self.wordllama.embed(inputs, norm=True)
        tokens = sum(len(self.wordllama.tokenizer.encode(text).ids) for text in inputs)
        return EmbeddingResult([[float(x) for x in row] for row in vectors.tolist()], tokens)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        return await asyncio.to_thread(self._embed, inputs)
