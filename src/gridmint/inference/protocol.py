"""Who may call a miner, on top of the signed-request checks of ``client.signing``.

By default a miner answers hotkeys registered on its subnet that hold a validator permit, plus gateways: those
registered on chain (module ``credit``) and those it lists itself. ``allow="registered"`` opens it to every
registered hotkey, ``allow="any"`` (local testing only) to every valid signature. The sets come from the chain's
metagraph and gateway list, refreshed by the miner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridmint.client.signing import NOT_PERMITTED

ALLOW_MODES = ("validators", "registered", "any")


@dataclass
class CallerPolicy:
    allow: str = "validators"
    validators: set[str] = field(default_factory=set)
    registered: set[str] = field(default_factory=set)
    gateways: set[str] = field(default_factory=set)  # listed by the miner's operator
    chain_gateways: set[str] = field(default_factory=set)  # registered on chain, refreshed with the metagraph

    def __post_init__(self) -> None:
        if self.allow not in ALLOW_MODES:
            raise ValueError(f"allow must be one of {ALLOW_MODES}, got {self.allow!r}")

    def check(self, caller: str) -> None:
        if self.allow == "any" or caller in self.gateways or caller in self.chain_gateways:
            return
        if caller in self.validators or (self.allow == "registered" and caller in self.registered):
            return
        who = "validators with a permit" if self.allow == "validators" else "hotkeys registered on the subnet"
        raise NOT_PERMITTED(f"{caller} may not call this miner: it answers {who} and gateways")

    def update(self, registered: set[str], validators: set[str]) -> None:
        self.registered = registered
        self.validators = validators
