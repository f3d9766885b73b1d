"""``transformers``: Hugging Face causal language models from a local folder, on the GPU when there is one.

Part of the optional ``torch`` extra (torch is a multi-GB install, kept out of the default and test installs).
The model is read with ``local_files_only``: a miner never reaches a hub. One request runs at a time on the model
(a lock, as for llama.cpp), in a worker thread, so the event loop keeps answering while the GPU works; streaming
uses transformers' ``TextIteratorStreamer`` fed by ``generate`` on that thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gridmint.inference.backends.base import (
    TEXT_GENERATION,
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
    UnsupportedError,
)


def _counting_streamer_class() -> Any:
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):  # type: ignore[misc]
        """A text streamer that also counts the tokens generated after the prompt."""

        generated = 0

        def put(self, value: Any) -> None:
            if not self.next_tokens_are_prompt:
                self.generated += int(value.numel())
            super().put(value)

    return CountingStreamer


class TransformersBackend:
    name = "transformers"
    modality = TEXT_GENERATION

    def __init__(self, model_path: str, model_name: str | None = None, device: str | None = None,
                 ignore_eos: bool = False) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a model folder (config.json, weights and tokenizer files)")
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype).to(self.device)
        self.model.eval()
        self.model_name = model_name or path.name.lower()
        self.ignore_eos = ignore_eos  # benchmarks: always produce max_tokens, whatever a random model says
        self._lock = asyncio.Lock()

    def models(self) -> list[str]:
        return [self.model_name]

    def _prompt(self, request: Generation) -> str:
        if request.messages is None:
            return request.prompt or ""
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(request.messages, tokenize=False,
                                                          add_generation_prompt=True))
        return "".join(f"{m['role']}: {m['content']}\n" for m in request.messages) + "assistant: "

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _arguments(self, request: Generation, inputs: Any) -> dict[str, Any]:
        arguments: dict[str, Any] = {**inputs, "max_new_tokens": request.max_tokens,
                                     "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id}
        if request.temperature > 0:
            arguments.update(do_sample=True, temperature=request.temperature)
        else:
            arguments.update(do_sample=False)
        if request.stop:
            arguments.update(stop_strings=request.stop, tokenizer=self.tokenizer)
        if self.ignore_eos:
            arguments["min_new_tokens"] = request.max_tokens
        return arguments

    def _encode(self, request: Generation) -> Any:
        if request.seed is not None:
            self.torch.manual_seed(request.seed)
        return self.tokenizer(self._prompt(request), return_tensors="pt", return_token_type_ids=False).to(self.device)

    def _generate(self, request: Generation) -> GenerationResult:
        inputs = self._encode(request)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        with self.torch.inference_mode():
            output = self.model.generate(**self._arguments(request, inputs))
        new = output[0][prompt_tokens:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        for stop in request.stop:
            text = text.split(stop)[0]
        finish = "length" if len(new) >= request.max_tokens else "stop"
        return GenerationResult(text, prompt_tokens, len(new), finish)

    async def generate(self, request: Generation) -> GenerationResult:
        async with self._lock:
            return await asyncio.to_thread(self._generate, request)

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        async with self._lock:
            inputs = self._encode(request)
            prompt_tokens = int(inputs["input_ids"].shape[1])
            streamer = _counting_streamer_class()(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
            failure: list[BaseException] = []

            def produce() -> None:
                try:
                    with self.torch.inference_mode():
                        self.model.generate(**self._arguments(request, inputs), streamer=streamer)
                except BaseException as error:  # re-raised on the event loop below
                    failure.append(error)
                    streamer.end()

            thread = threading.Thread(target=produce, name="transformers-stream", daemon=True)
            thread.start()
            produced: list[str] = []
            pieces = iter(streamer)
            while True:
                text = await asyncio.to_thread(next, pieces, None)
                if text is None:
                    break
                if text:
                    produced.append(text)
                    yield StreamPiece(text)
            await asyncio.to_thread(thread.join)
            if failure:
                raise failure[0]
        completion = streamer.generated  # the tokens the model made, even those that decode to nothing
        finish = "length" if completion >= request.max_tokens else "stop"
        yield StreamPiece("", finish, prompt_tokens, completion)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        raise UnsupportedError("the transformers backend serves text generation, not embeddings")
