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

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gridmint.chain.errors import register

GATEWAY_RECORDS_UNAVAILABLE = register("audit", 1, "gateway_records_unavailable")
BAD_OWN_RECORDS = register("audit", 2, "bad_own_records")
PAGE = 1_000  # records per /v1/usage page


@dataclass(frozen=True)
class UsageRecord:
    request: str
    line: int
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


def audit_line(line: int, records: Iterable[UsageRecord], paid: Mapping[str, Paid],
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


def fetch_usage(gateway_url: str, api_key: str, line: int, timeout_s: float = 30.0) -> list[UsageRecord]:
    """Every usage record the gateway lists for ``line``, page by page (``GET /v1/usage?line=&after=``)."""
    records: list[UsageRecord] = []
    base = gateway_url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout_s, headers={"authorization": f"Bearer {api_key}"}) as http:
            after = 0
            while True:
                answer = http.get(f"{base}/v1/usage", params={"line": line, "after": after, "limit": PAGE})
                if answer.status_code != 200:
                    raise GATEWAY_RECORDS_UNAVAILABLE(f"the gateway at {base} answered {answer.status_code} to "
                                                      f"GET /v1/usage: {answer.text[:300]}")
                page = answer.json()["usage"]
                records.extend(UsageRecord(str(r["request"]), int(r["line"]), str(r["miner"]), int(r["tokens"]),
                                           int(r["grains"]), str(r["state"])) for r in page)
                if len(page) < PAGE:
                    return records
                after = int(page[-1]["id"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise GATEWAY_RECORDS_UNAVAILABLE(f"cannot read the usage records at {base}: {error}") from None


def read_own_costs(path: Path) -> dict[str, int]:
    """The consumer's own log: one JSON object per line, ``{"request": <x-gridmint-request>, "cost": <grains>}``."""
    costs: dict[str, int] = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            entry = json.loads(text)
            costs[str(entry["request"])] = int(entry["cost"])
        except (ValueError, KeyError, TypeError):
            raise BAD_OWN_RECORDS(f"{path}, line {number}: expected {{\"request\": \"...\", \"cost\": <grains>}}"
                                  ) from None
    return costs
