"""The metagraph of a subnet, synced from the chain, with numpy views of its per-UID vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gridmint.chain import codec
from gridmint.chain.crypto import ADDRESS_BYTES, format_address
from gridmint.client.chain_client import ChainClient

ONE = 1 << 30  # the chain's Q30 fixed point
VECTORS = ("last_update", "registered_at", "stake", "active", "permit", "consensus", "trust", "incentive",
           "dividends", "emission")


@dataclass
class Metagraph:
    """``metagraph.incentive`` (and every name in VECTORS) is an int64 numpy array indexed by UID; Q30 vectors
    read as fractions through ``fraction(name)``. Addresses and endpoints are decoded on first use."""

    netuid: int
    block: int = 0
    n: int = 0
    hotkey_bytes: bytes = b""
    coldkey_bytes: bytes = b""
    encoded_endpoints: list[bytes | None] = field(default_factory=list)
    params: dict[str, int] = field(default_factory=dict)
    vectors: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    _decoded: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> Metagraph:
        return cls(netuid=int(answer["netuid"]), block=int(answer["block"]), n=int(answer["n"]),
                   hotkey_bytes=answer["hotkeys"], coldkey_bytes=answer["coldkeys"],
                   encoded_endpoints=list(answer["endpoints"]), params=dict(answer["params"]),
                   vectors={name: np.frombuffer(answer[name], dtype="<i8").astype(np.int64) for name in VECTORS})

    @classmethod
    def fetch(cls, client: ChainClient, netuid: int, height: int = 0) -> Metagraph:
        return cls.from_answer(client.query(f"/subnets/{netuid}/metagraph", height=height))

    def sync(self, client: ChainClient, height: int = 0) -> Metagraph:
        self.__dict__.update(self.fetch(client, self.netuid, height).__dict__)
        return self

    def _formatted(self, which: str, packed: bytes) -> list[str]:
        if which not in self._decoded:
            self._decoded[which] = [format_address(packed[i * ADDRESS_BYTES:(i + 1) * ADDRESS_BYTES])
                                    for i in range(self.n)]
        return list(self._decoded[which])

    @property
    def endpoints(self) -> list[dict[str, Any] | None]:
        """Each UID's announced endpoint (url, models, price_per_1k, protocol_version, block) or None."""
        if "endpoints" not in self._decoded:
            self._decoded["endpoints"] = [None if raw is None else codec.decode(raw) for raw in self.encoded_endpoints]
        decoded: list[dict[str, Any] | None] = self._decoded["endpoints"]
        return decoded

    @property
    def hotkeys(self) -> list[str]:
        return self._formatted("hotkeys", self.hotkey_bytes)

    @property
    def coldkeys(self) -> list[str]:
        return self._formatted("coldkeys", self.coldkey_bytes)

    def __getattr__(self, name: str) -> Any:
        vectors = self.__dict__.get("vectors", {})
        if name in vectors:
            return vectors[name]
        raise AttributeError(name)

    def fraction(self, name: str) -> npt.NDArray[np.float64]:
        """A Q30 vector (consensus, trust, incentive, dividends) as floats from 0 to 1, for display."""
        return self.vectors[name].astype(np.float64) / ONE

    def uid_of(self, hotkey: str) -> int | None:
        return self.hotkeys.index(hotkey) if hotkey in self.hotkeys else None
