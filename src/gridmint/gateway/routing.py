"""Which miners may serve a request, and in what order to try them.

Candidates are the miners whose announced endpoint lists the requested model, or every miner of a subnet when the
model names one (``subnet-<netuid>``). They are ordered by incentive from the metagraph (what validators measured),
then by the latency and error rate this gateway measured itself; a request may ask otherwise in an extra field,
as OpenRouter's ``provider`` does::

    "provider": {"sort": "rank" | "price" | "latency" | "throughput", "max_price": 0.002, "only": [...],
                 "ignore": [...], "require_parameters": true, "quantizations": ["q8_0", ...]}

``max_price`` is MINT per 1k tokens; ``only`` and ``ignore`` list miner hotkeys; ``throughput`` is the completion
tokens per second this gateway measured. Miners announce what they serve besides plain text with their models
(``GET /v1/models``: tools, structured outputs, logprobs, n, context length, quantization), which the gateway reads
(``capabilities``). A request using such a parameter goes to miners announcing it first, and only to them with
``require_parameters``; ``quantizations`` keeps the miners announcing one of those. A circuit breaker per miner skips
one that failed ``BREAKER_FAILURES`` times in a row for ``BREAKER_OPEN_S``, then lets one request through to test it.

``models`` (OpenRouter's fallback list) names models to try in turn: every miner of the first, then of the next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gridmint.chain.errors import register
from gridmint.chain.subnets import effective_price
from gridmint.client.amounts import parse_mint
from gridmint.client.chain_client import ChainClient
from gridmint.client.metagraph import Metagraph
from gridmint.inference.backends.base import Generation

BAD_PREFERENCES = register("gateway", 3, "bad_preferences")

SORTS = ("rank", "price", "latency", "throughput")
PREFERENCES = ("sort", "max_price", "only", "ignore", "require_parameters", "quantizations")
MAX_FALLBACKS = 8
BREAKER_FAILURES = 3
BREAKER_OPEN_S = 10.0
EWMA = 0.2


@dataclass(frozen=True)
class Candidate:
    netuid: int
    uid: int
    hotkey: str
    url: str
    models: tuple[str, ...]
    price_per_1k: int  # grains per 1k tokens in force (a raise counts once its notice has passed)
    incentive: int  # Q30
    modality: str


@dataclass
class Health:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    failures_in_row: int = 0
    open_until: float = 0.0
    served: int = 0
    tokens_per_s: float = 0.0  # completion tokens per second of the answers measured so far (EWMA)

    def measured_throughput(self, tokens: int, seconds: float) -> None:
        rate = tokens / max(seconds, 1e-3)
        self.tokens_per_s = rate if self.tokens_per_s == 0 else (1 - EWMA) * self.tokens_per_s + EWMA * rate

    def success(self, latency_s: float) -> None:
        self.latency_ms = latency_s * 1000 if self.served == 0 else \
            (1 - EWMA) * self.latency_ms + EWMA * latency_s * 1000
        self.error_rate *= 1 - EWMA
        self.failures_in_row = 0
        self.open_until = 0.0
        self.served += 1

    def failure(self) -> None:
        self.error_rate = (1 - EWMA) * self.error_rate + EWMA
        self.failures_in_row += 1
        if self.failures_in_row >= BREAKER_FAILURES:
            self.open_until = time.monotonic() + BREAKER_OPEN_S

    def is_open(self, now: float) -> bool:
        return self.open_until > now


@dataclass(frozen=True)
class Preferences:
    sort: str = "rank"
    max_price: int | None = None  # grains per 1k tokens
    only: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    require_parameters: bool = False
    quantizations: frozenset[str] = frozenset()


def parse_preferences(raw: Any) -> Preferences:
    if raw is None:
        return Preferences()
    if not isinstance(raw, dict) or set(raw) - set(PREFERENCES):
        raise BAD_PREFERENCES(f"provider: expected {{{', '.join(PREFERENCES)}}}")
    sort = raw.get("sort", "rank")
    if sort not in SORTS:
        raise BAD_PREFERENCES(f"provider.sort: expected one of {', '.join(SORTS)}")
    max_price = None
    if raw.get("max_price") is not None:
        try:
            max_price = parse_mint(str(raw["max_price"]))
        except ValueError as error:
            raise BAD_PREFERENCES(f"provider.max_price: {error} (MINT per 1k tokens)") from None
    lists = {}
    for name in ("only", "ignore", "quantizations"):
        value = raw.get(name) or []
        if not isinstance(value, list) or len(value) > 256 or not all(isinstance(v, str) for v in value):
            raise BAD_PREFERENCES(f"provider.{name}: expected a list of " +
                                  ("quantizations (q8_0, f16, ...)" if name == "quantizations" else "miner hotkeys"))
        lists[name] = frozenset(value)
    require = raw.get("require_parameters", False)
    if not isinstance(require, bool):
        raise BAD_PREFERENCES("provider.require_parameters: expected true or false")
    return Preferences(sort, max_price, lists["only"], lists["ignore"], require, lists["quantizations"])


def parse_models(raw: Any, model: Any) -> list[str]:
    """The models to try in turn: ``model`` (when given) then the ``models`` fallback list, each once."""
    if raw is None:
        return [model] if isinstance(model, str) else []
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_FALLBACKS or \
            not all(isinstance(m, str) and 0 < len(m) <= 256 for m in raw):
        raise BAD_PREFERENCES(f"models: expected a list of 1 to {MAX_FALLBACKS} model names to try in turn")
    listed = ([model] if isinstance(model, str) else []) + raw
    return list(dict.fromkeys(listed))


def needed_capabilities(request: Generation) -> frozenset[str]:
    """The capabilities (as miners announce them) that a request's parameters need."""
    needs = set()
    if request.tools and request.tool_choice != "none":
        needs.add("tools")
    if request.response_format is not None:
        needs.add("structured_outputs")
    if request.logprobs:
        needs.add("logprobs")
    if request.n > 1:
        needs.add("n")
    return frozenset(needs)


@dataclass
class Directory:
    """The miners the chain lists now, refreshed by the gateway; health is what this gateway saw of each."""

    candidates: list[Candidate] = field(default_factory=list)
    health: dict[str, Health] = field(default_factory=dict)
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)  # hotkey -> what its miner announces

    def replace(self, candidates: list[Candidate]) -> None:
        self.candidates = candidates

    def models(self) -> list[tuple[str, str]]:
        """(model id, modality) of every model some miner serves, plus each subnet as ``subnet-<netuid>``."""
        seen: dict[str, str] = {}
        for c in self.candidates:
            for model in c.models:
                seen.setdefault(model, c.modality)
            seen.setdefault(f"subnet-{c.netuid}", c.modality)
        return sorted(seen.items())

    def serving(self, model: str) -> list[Candidate]:
        if model.startswith("subnet-") and model[7:].isdigit():
            netuid = int(model[7:])
            return [c for c in self.candidates if c.netuid == netuid]
        return [c for c in self.candidates if model in c.models]

    def url_of(self, hotkey: str) -> str | None:
        """Where the miner with this hotkey announces it serves (None: it announces nothing now)."""
        return next((c.url for c in self.candidates if c.hotkey == hotkey), None)

    def health_of(self, hotkey: str) -> Health:
        found = self.health.get(hotkey)
        if found is None:
            found = self.health[hotkey] = Health()
        return found

    def order(self, candidates: list[Candidate], prefs: Preferences, line_max_price: int | None = None,
              needs: frozenset[str] = frozenset()) -> list[Candidate]:
        """The candidates the preferences allow at or below the credit line's maximum price, best first: miners
        announcing every capability the request ``needs`` before the others (only they with
        ``require_parameters``), and miners with an open breaker last."""
        now = time.monotonic()

        def capable(c: Candidate) -> bool:
            announced = self.capabilities.get(c.hotkey, {})
            return all(announced.get(need) for need in needs)

        allowed = [c for c in candidates
                   if (not prefs.only or c.hotkey in prefs.only) and c.hotkey not in prefs.ignore
                   and (prefs.max_price is None or c.price_per_1k <= prefs.max_price)
                   and (line_max_price is None or c.price_per_1k <= line_max_price)
                   and (not prefs.require_parameters or capable(c))
                   and (not prefs.quantizations or
                        self.capabilities.get(c.hotkey, {}).get("quantization") in prefs.quantizations)]

        def key(c: Candidate) -> tuple[Any, ...]:
            health = self.health_of(c.hotkey)
            rank = (-c.incentive, health.error_rate, health.latency_ms)
            first = (health.is_open(now), not capable(c))
            if prefs.sort == "price":
                return (*first, c.price_per_1k, *rank)
            if prefs.sort == "latency":
                return (*first, health.latency_ms, -c.incentive, health.error_rate)
            if prefs.sort == "throughput":
                return (*first, -health.tokens_per_s, *rank)
            return (*first, *rank)

        return sorted(allowed, key=key)


def load_candidates(client: ChainClient) -> list[Candidate]:
    """Every miner with an announced endpoint on every subnet, with its incentive, from the chain now, at the price
    in force in the next block (``subnets.effective_price``: a raise counts only once its notice has passed)."""
    height = client.height() + 1
    found = []
    for subnet in client.query("/subnets/list"):
        graph = Metagraph.fetch(client, int(subnet["netuid"]))
        incentive = graph.vectors["incentive"]
        for uid, endpoint in enumerate(graph.endpoints):
            if endpoint is None:
                continue
            found.append(Candidate(graph.netuid, uid, graph.hotkeys[uid], str(endpoint["url"]).rstrip("/"),
                                   tuple(endpoint["models"]), effective_price(endpoint, height), int(incentive[uid]),
                                   str(subnet["modality"])))
    return found
