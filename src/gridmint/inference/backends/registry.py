"""Backends by name. Heavy ones are imported only when chosen, so the miner starts without torch or llama.cpp
unless it needs them."""

from __future__ import annotations

from gridmint.inference.backends.base import Backend

BACKENDS = ("echo",)


class UnknownBackendError(ValueError):
    pass


def load_backend(name: str, model: str | None = None) -> Backend:
    if name == "echo":
        from gridmint.inference.backends.echo import ECHO_MODEL, EchoBackend

        return EchoBackend(model or ECHO_MODEL)
    raise UnknownBackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
