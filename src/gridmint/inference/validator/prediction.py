"""The validator of a prediction subnet: ask for forecasts, commit to the answers, score them when the future comes.

Once per subnet epoch (a *prompt*):
1. draw ``series_per_prompt`` fresh hidden-regime series (``series.py``) whose history ends at the current block and
   whose future starts ``lead_blocks`` later; ask every miner that announced an endpoint, concurrently, for
   ``paths`` simulated paths of each (``POST /v1/forecast``, signed with the validator's hotkey, the miner's own
   announced model named), and note the order in which the answers arrive;
2. put every signed answer in a Merkle tree (``answer_root.py``) and commit its root on chain
   (``commitments/commit``, data: the answer count). If the commitment is not in a block before the future's first
   block — the miners were slow, the chain fast — the prompt is void: scoring it would score answers that were not
   bound before the outcome could be known, so nobody is scored on it.

On every round, each committed prompt whose futures have all happened is scored (``forecast_scoring.py``): CRPS
over increments at several scales per series, misses (no answer, unsigned, malformed, or a copy of an answer that
arrived earlier) at the field's 95th percentile, a softmax per series, the prompt's score the mean over its series;
it joins a time-decayed leaderboard by hotkey. The leaderboard's weights (score², normalised) become the UID
averages the base validator submits through commit-reveal once an epoch (``loop.Validator.submit_weights``).

``records`` keeps, for each of the last ``MAX_RECORDS`` scored answers, its leaf, its proof and the committed root,
so anyone holding the answer can check it against the chain's ``/commitments/epoch/<netuid>/<validator>/<epoch>``.
An answer longer than its shape can take (``forecast_wire.answer_bytes_bound``: padding) is a miss whose body is
not kept; its hash is committed all the same.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import orjson

from gridmint.chain.commitments import MsgCommit
from gridmint.chain.crypto import PrivateKey
from gridmint.chain.errors import ChainError
from gridmint.client.metagraph import Metagraph
from gridmint.client.signing import BODY, NONCE, SIGNATURE, SIGNER
from gridmint.inference.client import Answer, HttpError, MinerClient
from gridmint.inference.forecast_wire import (
    FORECAST_PATH,
    PREDICTION,
    Forecast,
    ForecastRequest,
    Series,
    answer_bytes_bound,
    forecast_payload,
    parse_forecast_answer,
)
from gridmint.inference.validator.answer_root import SignedAnswer, compute_proof, compute_root
from gridmint.inference.validator.demand import METRICS, DemandSource, block_events_from
from gridmint.inference.validator.forecast_scoring import (
    Leaderboard,
    crps_over_increments,
    find_copies,
    normalise_prompt,
)
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.probes import GatewayProbes
from gridmint.inference.validator.scoring import Scorer
from gridmint.inference.validator.series import HiddenRegimeSource, RegimeParams, SeriesSource, SeriesSpec

log = logging.getLogger("gridmint.validator.prediction")

# Scored answers kept with their proofs, the latest first to stay: each holds the miner's body (~100 KB for the
# default prompt), and a list of every one since start grew without end (256 miners, an epoch a prompt: gigabytes).
MAX_RECORDS = 4_096

__all__ = ["PREDICTION", "SOURCES", "PredictionSettings", "PredictionValidator", "ScoredRecord"]


@dataclass(frozen=True)
class PredictionSettings:
    horizon: int = 12  # future blocks per series
    paths: int = 100
    series_per_prompt: int = 4
    history: int = 64
    lead_blocks: int = 20  # blocks between the last history block and the first future one
    scales: tuple[int, ...] = (1, 3, 12)  # increments scored: one step, a quarter and the whole horizon
    # "hidden-regime" (the default: nobody can look its future up or move it), or GridMint's own demand:
    # "demand-inference-paid", "demand-leases", "demand-orders" (validator/demand.py), in steps of step_blocks
    source: str = "hidden-regime"
    step_blocks: int = 10
    regime: RegimeParams = field(default_factory=RegimeParams)


@dataclass
class Received:
    """One miner's answer to a prompt."""

    uid: int
    hotkey: str
    arrival: int  # order of arrival (0 first); answers that never came arrive after every answer that did
    forecasts: list[Forecast] | None  # None: a miss
    note: str
    signed: SignedAnswer | None = None
    body: bytes = b""


@dataclass
class Prompt:
    challenge_id: str
    epoch: int  # the subnet epoch in which the answers were received and committed
    specs: list[SeriesSpec]
    answers: list[Received]
    leaves: list[bytes] = field(default_factory=list)
    root: bytes = b""
    committed_at: int = 0


@dataclass(frozen=True)
class ScoredRecord:
    """What a miner (or anyone) needs to check that a scored answer was committed before its outcome."""

    challenge_id: str
    epoch: int
    hotkey: str
    answer: SignedAnswer
    leaf: bytes
    proof: list[tuple[str, bytes]]
    root: bytes
    score: float
    body: bytes  # the answer as the miner signed it


class BlockHashes:
    """Block hashes by height, read once each from the node."""

    def __init__(self, validator: Validator) -> None:
        self.chain = validator.chain
        self.cache: dict[int, bytes] = {}

    def __call__(self, height: int) -> bytes:
        if height not in self.cache:
            self.cache[height] = bytes.fromhex(self.chain.block(height)["block_id"]["hash"])
        return self.cache[height]


SOURCES = ("hidden-regime", *(f"demand-{metric}" for metric in METRICS))


def make_source(settings: PredictionSettings, hashes: BlockHashes, chain: Any) -> SeriesSource:
    if settings.source == "hidden-regime":
        return HiddenRegimeSource(hashes, settings.regime, settings.history)
    if settings.source.removeprefix("demand-") in METRICS:
        return DemandSource(block_events_from(chain), settings.source.removeprefix("demand-"), settings.history,
                            settings.step_blocks)
    raise ValueError(f"unknown series source '{settings.source}'; choose one of {', '.join(SOURCES)}")


class PredictionValidator(Validator):
    def __init__(self, key: PrivateKey, netuid: int, node_url: str, settings: PredictionSettings = PredictionSettings(),
                 leaderboard: Leaderboard | None = None, **options: Any) -> None:
        # Prediction answers are scored when their future comes (``resolve``), not one by one as they arrive: the
        # base validator's per-answer scorer is never called here.
        super().__init__(key, netuid, node_url, cast(Scorer, None), **options)
        self.settings = settings
        self.hashes = BlockHashes(self)
        self.source = make_source(settings, self.hashes, self.chain)
        self.leaderboard = leaderboard or Leaderboard()
        self.pending: list[Prompt] = []
        self.records: deque[ScoredRecord] = deque(maxlen=MAX_RECORDS)
        self.last_prompt_epoch = -1
        self.void_prompts = 0

    # --- a round ---------------------------------------------------------------------------------------------

    async def round(self, client: MinerClient, probes: GatewayProbes | None = None) -> dict[int, float]:
        graph = await asyncio.to_thread(Metagraph.fetch, self.chain, self.netuid)
        self._forget_replaced(graph)
        epoch = int((await asyncio.to_thread(self.chain.query, f"/subnets/{self.netuid}"))["epoch"])
        if epoch > self.last_prompt_epoch:
            prompt = await self.prompt(client, graph, epoch)
            if prompt is not None:
                self.pending.append(prompt)
        height = await asyncio.to_thread(self.chain.height)
        scored = await asyncio.to_thread(self.resolve, height)
        self._refresh_averages(graph, height)
        return scored

    async def prompt(self, client: MinerClient, graph: Metagraph, epoch: int) -> Prompt | None:
        """Ask, commit, and return the prompt to score later; None if there was nobody to ask or it is void."""
        targets = [(uid, graph.hotkeys[uid], endpoint) for uid, endpoint in enumerate(graph.endpoints)
                   if endpoint is not None and graph.hotkeys[uid] != self.address and endpoint.get("models")]
        if not targets:
            log.info("No miner on subnet %d has announced an endpoint yet.", self.netuid)
            return None
        self.last_prompt_epoch = epoch  # one prompt an epoch, whatever becomes of it: one commitment an epoch
        started = time.monotonic()
        height = await asyncio.to_thread(self.chain.height)
        settings = self.settings
        specs = [self.source.draw(secrets.token_bytes(16), height, settings.lead_blocks, settings.horizon)
                 for _ in range(settings.series_per_prompt)]
        histories = await asyncio.to_thread(lambda: [self.source.history_of(spec) for spec in specs])
        challenge_id = f"{self.netuid}-{epoch}-{secrets.token_hex(8)}"
        arrivals: list[int] = []
        results = await asyncio.gather(*(
            self._ask_forecast(client, challenge_id, uid, hotkey, endpoint, specs, histories, arrivals)
            for uid, hotkey, endpoint in targets))
        answers = sorted(results, key=lambda r: r.arrival)
        prompt = Prompt(challenge_id, epoch, specs, answers)
        start = min(spec.start for spec in specs)
        asked_in = time.monotonic() - started
        now = await asyncio.to_thread(self.chain.query, f"/subnets/{self.netuid}")
        if int(now["epoch"]) != epoch:  # the commitment would land in the next epoch, which has its own prompt
            return self._void(prompt, f"asking took {asked_in:.1f} s, into the next epoch")
        if await asyncio.to_thread(self.chain.height) >= start - 1:
            return self._void(prompt, f"asking took {asked_in:.1f} s, until the block before the future")
        signed = [a.signed for a in answers if a.signed is not None]
        prompt.leaves = [answer.leaf() for answer in signed]
        prompt.root = compute_root(prompt.leaves)
        try:
            await asyncio.to_thread(self.send, [MsgCommit(self.netuid, prompt.root, len(signed).to_bytes(4, "big"))])
        except ChainError as error:
            return self._void(prompt, f"the commitment was refused: {error}")
        record = await asyncio.to_thread(self.chain.query,
                                         f"/commitments/epoch/{self.netuid}/{self.address}/{epoch}")
        if record is None or record["hash"] != prompt.root or int(record["block"]) >= start:
            return self._void(prompt, "the root was not committed before the future's first block")
        prompt.committed_at = int(record["block"])
        log.info("Prompt %s: %d answers of %d miners in %.1f s, committed at block %d (root %s); scored after "
                 "block %d.", challenge_id, len(signed), len(targets), asked_in, prompt.committed_at,
                 prompt.root.hex()[:16], max(spec.resolved_at for spec in specs))
        return prompt

    def _void(self, prompt: Prompt, why: str) -> Prompt | None:
        self.void_prompts += 1
        log.warning("Prompt %s is void (%s): nobody is scored on it. Raise lead_blocks if this repeats.",
                    prompt.challenge_id, why)
        return None

    async def _ask_forecast(self, client: MinerClient, challenge_id: str, uid: int, hotkey: str,
                            endpoint: dict[str, Any], specs: list[SeriesSpec], histories: list[np.ndarray],
                            arrivals: list[int]) -> Received:
        request = ForecastRequest(str(endpoint["models"][0]), self.settings.horizon,
                                  tuple(Series(spec.name(), history) for spec, history in zip(specs, histories,
                                                                                            strict=True)),
                                  self.settings.paths)
        late = 1 << 30  # a miss arrives after every answer
        try:
            # One deadline for the whole call: the client's timeout holds each phase (connecting, which takes in a
            # DNS answer and a TLS handshake, then the answer), so a miner slow at both kept the validator twice as
            # long, and the prompt waits for its slowest miner before committing: 2 × 10 s is the 20 blocks of
            # lead, and one miner made every prompt void.
            async with asyncio.timeout(self.timeout_s):
                answer = await client.call(endpoint["url"], FORECAST_PATH, hotkey, forecast_payload(request),
                                           timeout_s=self.timeout_s)
        except TimeoutError:
            return Received(uid, hotkey, late + uid, None, f"no answer within {self.timeout_s:g} s")
        except HttpError as error:
            return Received(uid, hotkey, late + uid, None, f"no answer: {error}")
        except Exception as error:  # a URL refused, say: the miner's fault, never the round's
            return Received(uid, hotkey, late + uid, None, f"could not ask ({type(error).__name__})")
        arrivals.append(uid)
        arrival = len(arrivals) - 1
        return self._check(uid, hotkey, arrival, challenge_id, request, answer)

    def _check(self, uid: int, hotkey: str, arrival: int, challenge_id: str, request: ForecastRequest,
               answer: Answer) -> Received:
        if answer.status != 200:
            return Received(uid, hotkey, arrival, None, f"HTTP {answer.status}")
        if not answer.signed:
            return Received(uid, hotkey, arrival, None, "answer not signed by the miner's hotkey")
        signed = SignedAnswer(challenge_id, hotkey, answer.proof[SIGNER], self.address, int(answer.proof[NONCE]),
                              answer.proof[BODY], answer.proof[SIGNATURE])
        bound = answer_bytes_bound(request)
        if len(answer.body) > bound:  # committed (its hash is in the leaf), scored a miss, and its body not kept
            return Received(uid, hotkey, arrival, None, f"answer of {len(answer.body)} bytes, over the {bound} its "
                            "shape can take", signed)
        try:
            forecasts = parse_forecast_answer(request, orjson.loads(answer.body))
        except Exception as error:  # malformed JSON or a shape other than asked: a miss, still committed
            return Received(uid, hotkey, arrival, None, f"malformed answer ({error})", signed, answer.body)
        return Received(uid, hotkey, arrival, forecasts, f"{len(forecasts)} forecasts in "
                        f"{answer.latency_s * 1000:.0f} ms", signed, answer.body)

    # --- scoring when the future has come --------------------------------------------------------------------

    def resolve(self, height: int) -> dict[int, float]:
        """Score every pending prompt whose futures have all happened by block ``height``."""
        scored: dict[int, float] = {}
        still = []
        for prompt in self.pending:
            if max(spec.resolved_at for spec in prompt.specs) > height:
                still.append(prompt)
                continue
            scores = self.score_prompt(prompt)
            self.leaderboard.add(height, {prompt.answers[i].hotkey: s for i, s in enumerate(scores)})
            self._record(prompt, scores)
            scored.update({prompt.answers[i].uid: s for i, s in enumerate(scores)})
        self.pending = still
        return scored

    def score_prompt(self, prompt: Prompt) -> list[float]:
        """Each answer's score on the prompt (answers in arrival order): the mean over series of the
        normalised scores."""
        totals = np.zeros(len(prompt.answers))
        for index, spec in enumerate(prompt.specs):
            outcome = self.source.outcome_of(spec)
            origin = float(self.source.history_of(spec)[-1])
            paths: list[np.ndarray | None] = [None if a.forecasts is None or a.forecasts[index].paths is None
                                              else a.forecasts[index].paths for a in prompt.answers]
            loss = np.full(len(paths), np.nan)
            present = [i for i, p in enumerate(paths) if p is not None]
            if present:
                field_paths = np.stack([paths[i] for i in present])  # type: ignore[misc]
                loss[present] = crps_over_increments(field_paths, origin, outcome, self.settings.scales)
            for copy in find_copies(paths):
                loss[copy] = np.nan
            totals += normalise_prompt(loss)
        return list(totals / len(prompt.specs))

    def _record(self, prompt: Prompt, scores: list[float]) -> None:
        signed = [(position, a.signed) for position, a in enumerate(prompt.answers) if a.signed is not None]
        for leaf_index, (position, answer) in enumerate(signed):
            self.records.append(ScoredRecord(
                prompt.challenge_id, prompt.epoch, prompt.answers[position].hotkey, answer,
                prompt.leaves[leaf_index], compute_proof(prompt.leaves, leaf_index), prompt.root, scores[position],
                prompt.answers[position].body))
        log.info("Prompt %s scored: %s.", prompt.challenge_id,
                 ", ".join(f"UID {a.uid} {s:.3f} ({a.note})" for a, s in zip(prompt.answers, scores, strict=True)))

    def _refresh_averages(self, graph: Metagraph, height: int) -> None:
        """The leaderboard's weights become the per-UID averages the base validator submits."""
        shares = self.leaderboard.weights(height)
        self.state.scores = {}
        self.state.hotkeys = {}
        for uid, hotkey in enumerate(graph.hotkeys):
            if hotkey in shares:
                self.state.scores[uid] = shares[hotkey]
                self.state.hotkeys[uid] = hotkey
