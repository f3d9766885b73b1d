"""A consumer's audit of a gateway: does what the chain paid from the line match what the gateway says it metered?

Three sources, each checked against the others:
- **the chain**: per miner, what was paid from the line (``/credit/paid/<line id>``: cumulative tokens, grains,
  requests) — every grain of it backed by that miner's signature;
- **the gateway's records** (``GET /v1/usage``): each request it metered for this consumer (request id, miner,
  tokens, grains, and whether its batch settled), and the latest receipt it holds per miner;
- optionally **the consumer's own records**: the cost each answer carried (``x-gridmint-request``,
  ``x-gridmint-cost``), kept by the consumer's application.

A difference is reported per miner or per request, with what each side says. Usage in a batch whose outcome the
gateway does not know yet may or may not be on chain, so it widens what is expected instead of counting as a
difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UsageRecord:
    request: str
    miner: str  # hotkey address
    tokens: int
    grains: int
    state: str  # "unsettled" (in no batch yet), "pending" (in a batch whose outcome is unknown) or "settled"


@dataclass(frozen=True)
class Paid:
    tokens: int = 0
    grains: int = 0
    requests: int = 0


@dataclass(frozen=True)
class Difference:
    subject: str  # a miner hotkey or a request id
    what: str  # one sentence: what each side says


@dataclass
class AuditReport:
    line: int
    miners: int = 0
    settled_grains: int = 0  # what the chain paid miners from the line
    records: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences


def audit(line: int, records: Iterable[UsageRecord], paid: Mapping[str, Paid],
          own_costs: Mapping[str, int] | None = None) -> AuditReport:
    """Compare the chain's payments on ``line`` (per miner) with the gateway's ``records`` and, when given, the
    consumer's own ``own_costs`` (request id -> grains the answer said it cost)."""
    records = list(records)
    report = AuditReport(line, miners=len(paid), settled_grains=sum(p.grains for p in paid.values()),
                         records=len(records))
    settled: dict[str, Paid] = defaultdict(Paid)
    pending: dict[str, Paid] = defaultdict(Paid)
    for record in records:
        into = settled if record.state == "settled" else pending if record.state == "pending" else None
        if into is not None:
            before = into[record.miner]
            into[record.miner] = Paid(before.tokens + record.tokens, before.grains + record.grains,
                                      before.requests + 1)
    for miner in sorted(set(paid) | set(settled)):
        on_chain, low, extra = paid.get(miner, Paid()), settled.get(miner, Paid()), pending.get(miner, Paid())
        if not low.grains <= on_chain.grains <= low.grains + extra.grains:
            expected = f"{low.grains}" if not extra.grains else f"{low.grains} to {low.grains + extra.grains}"
            report.differences.append(Difference(miner, (
                f"the chain paid {on_chain.grains} grains for {on_chain.requests} requests ({on_chain.tokens} "
                f"tokens) from line {line}; the gateway's records of settled usage come to {expected} grains for "
                f"{low.requests} requests ({low.tokens} tokens)")))
        elif not low.requests <= on_chain.requests <= low.requests + extra.requests:
            report.differences.append(Difference(miner, (
                f"the chain paid for {on_chain.requests} requests; the gateway's records show {low.requests} "
                f"settled (+{extra.requests} pending)")))
    if own_costs is not None:
        gateway_costs = {record.request: record.grains for record in records}
        for request in sorted(set(own_costs) | set(gateway_costs)):
            mine, theirs = own_costs.get(request), gateway_costs.get(request)
            if mine is None:
                report.differences.append(Difference(request, (
                    f"the gateway lists request {request} at {theirs} grains; your records do not have it")))
            elif theirs is None:
                report.differences.append(Difference(request, (
                    f"your answer to request {request} said {mine} grains; the gateway does not list it")))
            elif mine != theirs:
                report.differences.append(Difference(request, (
                    f"your answer to request {request} said {mine} grains; the gateway lists {theirs}")))
    return report
