"""The genesis section of a module whose only readable genesis field is its parameters:
``{"params": {...}, "records": {...}}``.

``params`` are checked against the module's bounds, and fields a file lacks take their defaults, so a genesis
exported before a module gained a parameter starts the module that has it. ``records`` are the rest of the module's
state (chain/records.py): empty in a hand-written genesis, everything the module stored in an exported one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gridmint.chain.errors import INVALID_GENESIS
from gridmint.chain.params import params_from_json, params_to_json, read_params
from gridmint.chain.query_args import expect_args
from gridmint.chain.records import RecordKind, Records, export_records, parse_records, write_records
from gridmint.chain.state import Reader, State


@dataclass(frozen=True)
class SectionState:
    """A module's validated genesis section."""

    params: Any  # the module's Params, or None for a module without parameters
    records: Records = ()


@dataclass(frozen=True)
class ModuleGenesis:
    """Genesis functions (validate, init, export) and the ``/<module>/params`` query of a module.

    ``cls``/``bounds``/``key``: its parameters, where and how they are stored; ``cls`` None for a module that has
    none. ``section`` is the module's name: its section of ``app_state`` and the namespace of its keys. ``records``:
    every kind of record the module keeps besides its parameters (chain/records.py), so that a record of another
    kind or shape is refused."""

    section: str
    cls: type[Any] | None = None
    bounds: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    key: bytes = b""
    records: tuple[RecordKind, ...] | None = None  # the kinds of record it keeps (None: records are not checked)

    @property
    def _reserved(self) -> tuple[bytes, ...]:
        return (self.key,) if self.cls is not None else ()

    def validate(self, raw: Any) -> SectionState:
        fields = {"params", "records"} if self.cls is not None else {"records"}
        if raw is None:  # an empty section, as `null`
            raw = {}
        if not isinstance(raw, dict) or set(raw) - fields:
            raise INVALID_GENESIS(f"{self.section}: expected an object with some of {sorted(fields)}")
        params = None
        if self.cls is not None:
            params = params_from_json(self.cls, f"{self.section}.params", raw.get("params", {}), self.bounds)
        records = parse_records(f"{self.section}.records", self.section, raw.get("records", {}), self._reserved,
                                self.records)
        return SectionState(params, records)

    def init(self, state: State, genesis: SectionState) -> None:
        if self.cls is not None:
            state.set_value(self.key, params_to_json(genesis.params))
        write_records(state, genesis.records)

    def export(self, state: Reader) -> Any:
        section: dict[str, Any] = {}
        if self.cls is not None:
            section["params"] = params_to_json(read_params(state, self.key, self.cls))
        records = export_records(state, self.section, self._reserved)
        if records:
            section["records"] = records
        return section

    def query(self, state: Reader, parts: list[str], data: bytes) -> Any:
        """``/<module>/params``: the parameters in force."""
        if self.cls is None:
            raise TypeError(f"module {self.section} has no parameters")
        expect_args(parts, 0, f"/{self.section}/params")
        return params_to_json(read_params(state, self.key, self.cls))
