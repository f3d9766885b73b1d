"""Module parameters: frozen dataclasses of integers, each with bounds, read from genesis and kept in state.

Every module declares ``Params`` with defaults and ``BOUNDS``; ``params_from_json`` checks a genesis section
against them and names the field at fault, so each new module's parameters are validated the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from gridmint.chain import codec
from gridmint.chain.errors import INVALID_GENESIS
from gridmint.chain.state import Reader

P = TypeVar("P")


def params_from_json(cls: type[P], section: str, raw: Any, bounds: Mapping[str, tuple[int, int]]) -> P:
    """``cls`` built from a JSON object of integers within ``bounds``; missing fields take their defaults."""
    defaults = {field.name: field.default for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if not isinstance(raw, dict) or set(raw) - set(defaults):
        raise INVALID_GENESIS(f"{section}: expected an object with some of {sorted(defaults)}")
    values = {}
    for name, default in defaults.items():
        value = raw.get(name, default)
        low, high = bounds[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise INVALID_GENESIS(f"{section}.{name}: expected a whole number from {low} to {high}, got {value!r}")
        values[name] = value
    return cls(**values)


def params_to_json(params: Any) -> dict[str, int]:
    return dict(dataclasses.asdict(params))


def read_params(state: Reader, key: bytes, cls: type[P]) -> P:
    """The parameters stored at ``key`` (defaults where absent). Handlers read them on every transaction (the
    fee minimum, say), so each stored encoding is decoded once: the result is frozen and the bytes name it."""
    raw = state.get(key)
    params: P | None = _DECODED.get((cls, raw))
    if params is None:
        if len(_DECODED) >= _DECODED_LIMIT:
            _DECODED.clear()
        params = _DECODED[(cls, raw)] = cls(**({} if raw is None else codec.decode_stored(raw)))
    return params


def params_reader(key: bytes, cls: type[P]) -> Callable[[Reader], P]:
    """A module's ``get_params``: its parameters of class ``cls`` stored at ``key``, as ``read_params`` reads
    them."""

    def get_params(state: Reader) -> P:
        return read_params(state, key, cls)

    return get_params


_DECODED: dict[tuple[type[Any], bytes | None], Any] = {}
_DECODED_LIMIT = 64  # a few parameter sets per module; a chain that changes them often only decodes again
