"""Backends by name. Heavy ones are imported only when chosen, so the miner starts without torch or llama.cpp
unless it needs them."""

from __future__ import annotations

from gridmint.inference.backends.base import Backend

BACKENDS = ("echo", "llama-cpp", "wordllama", "transformers", "sentence-transformers", "naive", "statsmodels")


class UnknownBackendError(ValueError):
    pass


def load_backend(name: str, model: str | None = None) -> Backend:
    if name == "echo":
        from gridmint.inference.backends.echo import ECHO_MODEL, EchoBackend

        return EchoBackend(model or ECHO_MODEL)
    if name == "llama-cpp":
        from gridmint.inference.backends.llama_cpp import LlamaCppBackend

        return LlamaCppBackend(model_path=model)
    if name == "wordllama":
        from gridmint.inference.backends.wordllama import WordLlamaBackend

        return WordLlamaBackend()
    if name == "transformers":
        if model is None:
            raise UnknownBackendError("the transformers backend needs --model: a local model folder")
        from gridmint.inference.backends.transformers import TransformersBackend

        return TransformersBackend(model)
    if name == "sentence-transformers":
        from gridmint.inference.backends.sentence_transformers import SentenceTransformersBackend

        return SentenceTransformersBackend(model)
    if name == "naive":  # forecasts (prediction subnets): the random-walk baseline
        from gridmint.inference.backends.forecast import NaiveBackend

        return NaiveBackend(model or "naive")
    if name == "statsmodels":
        from gridmint.inference.backends.forecast_statsmodels import StatsmodelsBackend

        return StatsmodelsBackend(model or "statsmodels-arima")
    raise UnknownBackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
