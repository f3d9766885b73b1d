"""The validator loop for one subnet.

Each round: sync the metagraph, draw a challenge, query every miner that announced an endpoint concurrently (with a
timeout) — directly, signed with the validator's hotkey, or through a gateway as an ordinary consumer so that the
miner cannot tell the probe from a customer's request (``probes``) — and score each answer: 0 for a timeout, an
error, an unsigned answer or a failed model check, else the scorer's quality times a latency factor. A miner's
fault stays the miner's: whatever goes wrong while asking or scoring one miner (a URL or address refused, a
malformed or oversized answer, a score that is not a finite number in [0, 1]) scores that miner 0 and the round
goes on. A gateway refusing the validator's own probe (its key, credit or rate) measures nothing: that miner's
average is left as it was this round. Scores feed an exponential moving average per UID, reset when a UID changes
hands. Once per subnet epoch the averages become weights: with commit-reveal, the validator reveals what it
committed ``reveal_period`` epochs ago and commits the new weights; without, it sets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.weights import MsgCommitWeights, MsgRevealWeights, MsgSetWeights, commit_hash
from gridmint.client.chain_client import ChainClient
from gridmint.client.metagraph import Metagraph
from gridmint.inference.client import Answer, HttpError, MinerClient
from gridmint.inference.validator.probes import GatewayProbes, GatewayRefusedError, ProbeGateway
from gridmint.inference.validator.scoring import Scorer

log = logging.getLogger("gridmint.validator")


@dataclass
class ValidatorState:
    scores: dict[int, float] = field(default_factory=dict)  # EMA per UID
    hotkeys: dict[int, str] = field(default_factory=dict)  # who held each UID when it was scored
    last_epoch_acted: int = -1
    pending: dict[str, Any] | None = None  # {"epoch", "uids", "weights", "salt"} of the last commit


class Validator:
    def __init__(self, key: PrivateKey, netuid: int, node_url: str, scorer: Scorer, timeout_s: float = 10.0,
                 ema_alpha: float = 0.3, latency_weight: float = 0.2, seed: int | None = None,
                 allow: Iterable[str] = (), probe_gateway: ProbeGateway | None = None) -> None:
        self.key = key
        self.probe_gateway = probe_gateway  # None: miners are asked directly
        self.allow = tuple(allow)  # IP:port of miners reachable although not public (MinerClient)
        self.address = format_address(key.address)
        self.netuid = netuid
        self.node_url = node_url
        self.scorer = scorer
        self.timeout_s = timeout_s
        self.ema_alpha = ema_alpha
        self.latency_weight = latency_weight
        # Challenges come from the operating system's randomness, so no run of earlier probes predicts the next;
        # a seed (tests) makes them repeatable instead.
        self.rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self.state = ValidatorState()
        self.chain = ChainClient(node_url)
        self._submitting = asyncio.Lock()
        self._sending = threading.Lock()  # weights and a round's own transactions (prediction) share one nonce

    def close(self) -> None:
        self.chain.close()

    # --- one round ---------------------------------------------------------------------------------------

    async def round(self, client: MinerClient, probes: GatewayProbes | None = None) -> dict[int, float]:
        """One round; ``probes`` (if given) carries every challenge through its gateway instead of ``client``."""
        graph = await asyncio.to_thread(Metagraph.fetch, self.chain, self.netuid)
        self._forget_replaced(graph)
        targets = [(uid, graph.hotkeys[uid], endpoint["url"]) for uid, endpoint in enumerate(graph.endpoints)
                   if endpoint is not None and graph.hotkeys[uid] != self.address]
        if not targets:
            log.info("No miner on subnet %d has announced an endpoint yet.", self.netuid)
            return {}
        challenge = await asyncio.to_thread(self.scorer.draw, self.rng)  # a structured probe runs the reference
        answers = await asyncio.gather(*(self._ask(client, probes, url, hotkey, challenge)
                                         for _, hotkey, url in targets))
        scores: dict[int, float] = {}
        for (uid, hotkey, url), (score, note) in zip(targets, answers, strict=True):
            if score is None:
                log.warning("UID %d (%s) was not measured this round: %s", uid, hotkey[:12], note)
                continue
            scores[uid] = score
            previous = self.state.scores.get(uid, 0.0)
            self.state.scores[uid] = self.ema_alpha * score + (1 - self.ema_alpha) * previous
            self.state.hotkeys[uid] = hotkey
            log.info("UID %d (%s at %s): score %.3f (%s); average %.3f.", uid, hotkey[:12], url, score, note,
                     self.state.scores[uid])
        return scores

    async def _ask(self, client: MinerClient, probes: GatewayProbes | None, url: str, hotkey: str,
                   challenge: Any) -> tuple[float | None, str]:
        try:
            if probes is None:
                answer = await client.call(url, challenge.path, hotkey, challenge.payload, timeout_s=self.timeout_s)
            else:
                answer = await probes.call(challenge.path, hotkey, challenge.payload, timeout_s=self.timeout_s)
            score, note = await self._score(answer, challenge)
            if not math.isfinite(score) or not 0.0 <= score <= 1.0:
                return 0.0, f"score {score!r} is not a finite number from 0 to 1"
        except GatewayRefusedError as error:
            return None, str(error)
        except HttpError as error:
            return 0.0, f"no answer: {error}"
        except Exception as error:  # anything else one miner's answer provokes is that miner's fault, not the round's
            log.warning("Scoring the answer of %s at %s failed (%s: %s); it scores 0.", hotkey[:12], url[:100],
                        type(error).__name__, error)
            return 0.0, f"answer could not be scored ({type(error).__name__})"
        return score, note

    async def _score(self, answer: Answer, challenge: Any) -> tuple[float, str]:
        if answer.status != 200:
            return 0.0, f"HTTP {answer.status}"
        if not answer.signed:
            return 0.0, "answer not signed by the miner's hotkey"
        try:
            body = answer.json()
        except ValueError:
            return 0.0, "answer is not JSON"
        quality = await asyncio.to_thread(self.scorer.score, challenge, body)
        speed = 1.0 - self.latency_weight * min(answer.latency_s / self.timeout_s, 1.0)
        return quality * speed, f"quality {quality:.3f} in {answer.latency_s * 1000:.0f} ms"

    def _forget_replaced(self, graph: Metagraph) -> None:
        for uid, hotkey in list(self.state.hotkeys.items()):
            if uid >= graph.n or graph.hotkeys[uid] != hotkey:
                log.info("UID %d changed hands; its average starts again.", uid)
                self.state.scores.pop(uid, None)
                self.state.hotkeys.pop(uid, None)

    # --- weights -----------------------------------------------------------------------------------------

    def weights(self) -> tuple[list[int], list[int]]:
        """The averages scaled so the best UID gets 65535; UIDs at 0 are left out."""
        best = max(self.state.scores.values(), default=0.0)
        if best <= 0:
            return [], []
        pairs = sorted((uid, round(65_535 * score / best)) for uid, score in self.state.scores.items() if score > 0)
        pairs = [(uid, weight) for uid, weight in pairs if weight > 0]
        return [uid for uid, _ in pairs], [weight for _, weight in pairs]

    def submit_weights(self) -> str:
        """Act once per subnet epoch: reveal what is due, then commit (or set) the current weights."""
        info = self.chain.query(f"/subnets/{self.netuid}")
        epoch, params = int(info["epoch"]), info["params"]
        if epoch == self.state.last_epoch_acted:
            return "already acted this epoch"
        done = []
        pending = self.state.pending
        if params["commit_reveal"] and pending is not None:
            due = pending["epoch"] + params["reveal_period"]
            if due == epoch:
                self._send(MsgRevealWeights(self.netuid, pending["uids"], pending["weights"], pending["salt"]))
                done.append(f"revealed {len(pending['uids'])} weights committed in epoch {pending['epoch']}")
            elif due < epoch:
                done.append(f"missed the reveal of epoch {due}")
            if due <= epoch:
                self.state.pending = None
        uids, weights = self.weights()
        if uids:
            if params["commit_reveal"]:
                salt = secrets.token_bytes(32)
                self._send(MsgCommitWeights(self.netuid, commit_hash(self.netuid, self.key.address, uids, weights,
                                                                     salt)))
                self.state.pending = {"epoch": epoch, "uids": uids, "weights": weights, "salt": salt}
                done.append(f"committed {len(uids)} weights")
            else:
                self._send(MsgSetWeights(self.netuid, uids, weights))
                done.append(f"set {len(uids)} weights")
        if not done:  # looked at again on the next call (every 2 s): a round may still bring the first scores
            return f"epoch {epoch}: nothing to submit yet"
        self.state.last_epoch_acted = epoch
        summary = f"epoch {epoch}: " + "; ".join(done)
        log.info("Subnet %d %s.", self.netuid, summary)
        return summary

    def _send(self, message: Any) -> None:
        self.send([message])

    def send(self, messages: list[Any]) -> None:
        """Sign and send at the fee the chain requires (raises if refused or failed), one transaction at a time:
        the weights loop and a round may both send, and two at once would take the same nonce."""
        with self._sending:
            self.chain.execute(self.key, messages)

    # --- forever -----------------------------------------------------------------------------------------

    async def run(self, interval_s: float, rounds: int | None = None, weights_every_s: float = 2.0) -> None:
        """Rounds every ``interval_s`` seconds; ``rounds`` bounds the loop (tests), None runs until cancelled.
        Weights are also acted on by a loop of their own, every ``weights_every_s``: a reveal is due in one exact
        epoch, and a round slower than an epoch (a slow model, a loaded machine) must not make the validator miss
        it (it did: "missed the reveal" every epoch, and no weights ever reached the chain)."""
        done = 0
        probes = None if self.probe_gateway is None else GatewayProbes(self.probe_gateway)
        async with MinerClient(self.key, timeout_s=self.timeout_s, allow=self.allow) as client, \
                probes or contextlib.nullcontext():
            submitter = asyncio.create_task(self._submit_forever(weights_every_s))
            try:
                while rounds is None or done < rounds:
                    started = asyncio.get_running_loop().time()
                    try:
                        await self.round(client, probes)
                        await self._submit()
                    except (ChainError, OSError) as error:
                        log.warning("Round on subnet %d failed: %s", self.netuid, error)
                    done += 1
                    elapsed = asyncio.get_running_loop().time() - started
                    await asyncio.sleep(max(0.0, interval_s - elapsed))
            finally:
                submitter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await submitter

    async def _submit(self) -> None:
        async with self._submitting:  # one submission at a time: two would both act in one epoch
            await asyncio.to_thread(self.submit_weights)

    async def _submit_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self._submit()
            except (ChainError, OSError) as error:
                log.warning("Submitting weights on subnet %d failed: %s", self.netuid, error)

