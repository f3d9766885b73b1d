"""Who may call a miner, on top of the signed-request checks of ``client.signing``, and how much a gateway may
owe it.

By default a miner answers hotkeys registered on its subnet that hold a validator permit, plus gateways: those
registered on chain (module ``credit``) and those it lists itself. ``allow="registered"`` opens it to every
registered hotkey, ``allow="any"`` (local testing only) to every valid signature, each then treated as a gateway.
The sets and the gateways' bonds come from the chain's metagraph and gateway list, refreshed by the miner.

**Exposure.** A gateway pays its miners only after the fact, so what a miner has served it and holds no receipt
for is a debt on the gateway's word. A gateway registered on chain is served only while that debt (grains at the
miner's own price, served minus covered by receipts the miner signed) is below the gateway's bond on chain: the
bond is what a miner's claim can take when the lines do not pay. A gateway the operator lists (``--gateway``)
is trusted without limit, and a caller with no bond on chain (let in only by ``allow="any"``) has none to weigh.
The check is made at admission, so requests already in flight can take the debt past the bond by at most
``max_concurrency`` answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridmint.client.signing import NOT_PERMITTED

ALLOW_MODES = ("validators", "registered", "any")


class ExposureError(Exception):
    """A gateway owes the miner its bond or more; it is served again once it asks for receipts (HTTP 402)."""

    code = "gateway_exposure"


@dataclass
class CallerPolicy:
    allow: str = "validators"
    validators: set[str] = field(default_factory=set)
    registered: set[str] = field(default_factory=set)
    gateways: set[str] = field(default_factory=set)  # listed by the miner's operator: served without a limit
    chain_bonds: dict[str, int] = field(default_factory=dict)  # gateways on chain -> bond, refreshed with the graph

    def __post_init__(self) -> None:
        if self.allow not in ALLOW_MODES:
            raise ValueError(f"allow must be one of {ALLOW_MODES}, got {self.allow!r}")

    def check(self, caller: str) -> bool:
        """Raise ``auth/not_permitted`` unless ``caller`` may call; True when it calls as a gateway (the miner then
        counts what it serves it, and it may ask for receipts)."""
        if self.allow == "any" or caller in self.gateways or caller in self.chain_bonds:
            return True
        if caller in self.validators or (self.allow == "registered" and caller in self.registered):
            return False
        who = "validators with a permit" if self.allow == "validators" else "hotkeys registered on the subnet"
        raise NOT_PERMITTED(f"{caller} may not call this miner: it answers {who} and gateways")

    def check_exposure(self, gateway: str, exposure: int) -> None:
        """Raise ExposureError if ``gateway`` (a caller ``check`` called a gateway) owes ``exposure`` grains and
        that reaches its bond on chain. Listed gateways, and callers under ``allow="any"``, have no limit."""
        if gateway in self.gateways:
            return
        bond = self.chain_bonds.get(gateway)
        if bond is not None and exposure >= bond:
            raise ExposureError(f"gateway {gateway} already owes this miner {exposure} grains for answers without a "
                                f"signed receipt, as much as its bond on chain ({bond} grains); it is served again "
                                "once it asks for receipts (POST /v1/receipts)")

    def update(self, registered: set[str], validators: set[str]) -> None:
        self.registered = registered
        self.validators = validators
