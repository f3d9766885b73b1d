"""A hypothesis state machine drives the real app through a random workload of every module — transfers, subnet
and UID registrations (with pruning), stakes and unstakes, weights, epochs, market orders, bids, leases (accepted,
closed with each reason, topped up, withdrawn, run dry), credit lines (opened, topped up, settled with the miners'
signed cumulative receipts, claimed with the gateway's acknowledgements, closed, reclaimed) — and after every block
requires every module's invariants to hold and every refusal to be a registered code (never an unforeseen
exception); each run then replays its blocks from genesis into a fresh app, which must reach the same app hash at
every height and the same final state.

Rules sign well-formed messages that mostly make sense (known ids, amounts near what is held) and sometimes do not
(amounts beyond the balance, stale receipts, replayed batches, the wrong party). A rule's transaction goes in a
block of its own or waits for the next rule's, so blocks hold several modules' transactions at once.

Lean in CI (25 derandomized runs of up to 50 steps, which must reach every outcome in ``REACHED``); with
``GRIDMINT_LONG=1``, 300 random runs of up to 150 steps (``GRIDMINT_MACHINE_EXAMPLES``, ``GRIDMINT_MACHINE_STEPS``).
The tests of the test below inject bugs the machine must catch.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from gridmint.chain import bank, credit, escrow, market, neurons, staking
from gridmint.chain.bank import MsgSend
from gridmint.chain.credit import (
    MsgClaim,
    MsgCloseCredit,
    MsgOpenCredit,
    MsgReclaimCredit,
    MsgRegisterGateway,
    MsgSettle,
    MsgTopUpCredit,
)
from gridmint.chain.market import (
    MsgAcceptBid,
    MsgBid,
    MsgCloseDeployment,
    MsgCloseLease,
    MsgCreateDeployment,
    MsgTopUp,
    MsgWithdraw,
)
from gridmint.chain.receipts import Receipt, acknowledge_receipt, sign_receipt
from gridmint.chain.staking import MsgAddStake, MsgRemoveStake, MsgSetTake
from gridmint.chain.state import CommittedView
from gridmint.chain.subnets import MsgCreateSubnet, MsgDissolveSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.tx import Msg
from gridmint.chain.weights import MsgSetWeights
from tests.chain.chain_world import (
    BALANCE,
    COLDKEYS,
    CONSUMERS,
    GATEWAY,
    GPU_MODELS,
    HOTKEYS,
    MINERS,
    PROVIDERS,
    TENANTS,
    VALIDATORS,
    CheckedDriver,
    build_world,
    replay,
)
from tests.support.chain import CHAIN_ID, MINT, key

EXAMPLES, STEPS = 25, 50  # CI: derandomized, so that what the runs must reach is reached on every run
LONG_EXAMPLES = int(os.environ.get("GRIDMINT_MACHINE_EXAMPLES", "300"))
LONG_STEPS = int(os.environ.get("GRIDMINT_MACHINE_STEPS", "150"))

alone = st.booleans()  # True: the transaction gets a block of its own; False: it waits for the next rule's
pick = st.integers(0, 2**16)  # an index into whatever exists when the rule runs
grains = st.one_of(st.integers(1, 5 * MINT), st.integers(1, 2_000 * MINT), st.sampled_from((1, BALANCE, 2 * BALANCE)))
GATEWAY_ADDRESS = key(GATEWAY).address
stake_targets = st.sampled_from(("v1/hot", "v2/hot", "v1/hot", "v2/hot", *HOTKEYS))  # mostly the validators'
# Receipts for a settlement or a claim: (consumer, miner, tokens added, requests added, "fair"/"over"/"stale").
entries = st.lists(st.tuples(st.sampled_from(("c1", "c1", "c2")), st.sampled_from(("m1", "m2", *MINERS)),
                             st.integers(1, 30_000), st.integers(1, 5),
                             st.sampled_from(("fair", "fair", "fair", "over", "stale"))),
                   min_size=1, max_size=3)


@pytest.fixture(autouse=True)
def same_draws_in_every_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Derandomized runs draw the same workload whatever else the process imported. Hypothesis mixes constants it
    mines from every local module loaded so far into its draws, so under xdist a worker that had run other tests
    first drew another workload (and missed outcomes this file requires); with no mined constants the draws
    depend on the seed alone."""
    monkeypatch.setattr(providers, "_get_local_constants", Constants)  # none mined: an empty pool
    providers.CONSTANTS_CACHE.cache.clear()
    yield
    providers.CONSTANTS_CACHE.cache.clear()  # the next test mines the modules' constants again


def chosen(items: list[Any], index: int, missing: Any) -> Any:
    """One of ``items`` (``missing`` when there are none: the transaction names something that does not exist)."""
    return items[index % len(items)] if items else missing


class ChainMachine(RuleBasedStateMachine):
    """The world of chain_world.py, driven by rules; the driver checks every block and records it for the replay.
    ``signed`` is each miner's cumulative receipt per (line id, hotkey): what it has signed so far, which a later
    receipt only grows."""

    outcomes: ClassVar[Counter[tuple[str, str]]] = Counter()  # over every run of a test: what the workload reached

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory(prefix="gridmint-machine-")
        self.net: CheckedDriver | None = None
        self.signed: dict[tuple[int, str], tuple[int, int, int]] = {}

    # --- plumbing -------------------------------------------------------------------------------------------

    @initialize()
    def build(self) -> None:
        self.net = build_world(Path(self.folder.name))

    @property
    def driver(self) -> CheckedDriver:
        assert self.net is not None
        return self.net

    def view(self) -> CommittedView:
        return CommittedView(self.driver.app.store)

    def send(self, name: str, message: Msg, own_block: bool) -> None:
        self.driver.send(name, message)
        if own_block:
            self.driver.commit()

    def orders(self) -> list[int]:
        return list(range(1, self.view().get_int(market.NEXT_ORDER_KEY) + 1))

    def leases(self) -> list[int]:
        """The open leases, or every lease when none is open."""
        every = list(range(1, self.view().get_int(escrow.NEXT_ID_KEY) + 1))
        return [lease for lease in every if escrow.get_account(self.view(), lease)["open"]] or every

    def with_line(self, consumer: str) -> str:
        """``consumer`` if it holds a line with the gateway, else one that does (else ``consumer``)."""
        holders = [name for name in (consumer, *CONSUMERS) if self.line(name) is not None]
        return holders[0] if holders else consumer

    def line(self, consumer: str) -> dict[str, Any] | None:
        found = self.view().get_value(credit.LINE_PREFIX + key(consumer).address + GATEWAY_ADDRESS)
        return None if found is None else dict(found)

    def teardown(self) -> None:
        try:
            if self.net is not None and self.driver.healthy:  # a failed run is reported as it failed
                if self.driver.queued:
                    self.driver.commit()
                replay(self.driver.blocks, Path(self.folder.name), self.driver.app)
                ChainMachine.outcomes.update(self.driver.outcomes)
        finally:
            if self.net is not None:
                self.driver.app.store.close()
            self.folder.cleanup()

    # --- bank, subnets, staking, weights ---------------------------------------------------------------------

    @rule(sender=st.sampled_from(COLDKEYS), to=st.sampled_from((*COLDKEYS, *HOTKEYS)), amount=grains, own=alone)
    def transfer(self, sender: str, to: str, amount: int, own: bool) -> None:
        self.send(sender, MsgSend(key(to).address, amount), own)

    @rule(coldkey=st.sampled_from(COLDKEYS), hotkey=st.sampled_from(HOTKEYS), netuid=st.integers(1, 3), own=alone)
    def register(self, coldkey: str, hotkey: str, netuid: int, own: bool) -> None:
        # The hotkey's own coldkey mostly (x1/x2 are anyone's); a full subnet prunes a UID and returns its stake.
        owner = hotkey.split("/")[0]
        signer = owner if owner in COLDKEYS and coldkey != "d1" else coldkey
        self.send(signer, MsgRegister(netuid, key(hotkey).address, 0), own)

    @rule(who=st.sampled_from(("owner", "d1", "t1")), own=alone)
    def create_subnet(self, who: str, own: bool) -> None:
        self.send(who, MsgCreateSubnet("text-generation", f"subnet of {who}"), own)

    def subnet_owner(self, netuid: int) -> str:
        subnet = neurons.get_subnet(self.view(), netuid)
        return next((name for name in COLDKEYS if subnet and key(name).address == subnet["owner"]), "d1")

    @rule(netuid=st.sampled_from((2, 3, 1)), own=alone)
    def dissolve_subnet(self, netuid: int, own: bool) -> None:
        """Its owner dissolves a subnet (subnet 1 too, rarely): stakes return, UIDs and pending emission go."""
        self.send(self.subnet_owner(netuid), MsgDissolveSubnet(netuid), own)

    @rule(netuid=st.sampled_from((1, 2)), param=st.sampled_from(("tempo", "max_uids", "max_validators", "kappa",
                                                                  "immunity_period", "burn_multiplier")),
          value=st.one_of(st.integers(0, 10), st.integers(0, 70_000)), own=alone)
    def set_param(self, netuid: int, param: str, value: int, own: bool) -> None:
        self.send(self.subnet_owner(netuid), MsgSetHyperparam(netuid, param, value), own)

    @rule(coldkey=st.sampled_from((*VALIDATORS, "d1", "c2")), hotkey=stake_targets,
          netuid=st.sampled_from((1, 1, 2)), amount=st.one_of(st.integers(10**6, 50 * MINT), grains), own=alone)
    def add_stake(self, coldkey: str, hotkey: str, netuid: int, amount: int, own: bool) -> None:
        self.send(coldkey, MsgAddStake(netuid, key(hotkey).address, amount), own)

    @rule(coldkey=st.sampled_from((*VALIDATORS, "d1", "c2")), hotkey=stake_targets,
          share=st.sampled_from(("all", "half", "dust", "more")), own=alone)
    def remove_stake(self, coldkey: str, hotkey: str, share: str, own: bool) -> None:
        """Unstake from a position the coldkey holds (or, holding none, from ``hotkey`` on subnet 1)."""
        view = self.view()
        netuid, target = 1, key(hotkey).address
        for raw_key, _ in view.scan(staking.POSITION_PREFIX + key(coldkey).address):
            pool = staking._read_pool(view, int.from_bytes(raw_key[-8:], "big"))
            if pool is not None and staking.live_pool(view, pool.netuid, pool.hotkey) == pool:
                netuid, target = pool.netuid, pool.hotkey
                if pool.hotkey == key(hotkey).address:
                    break
        stake = staking.get_stake(view, netuid, target, key(coldkey).address)
        amount = {"all": stake, "half": stake // 2, "dust": 1, "more": stake + 1}[share]
        self.send(coldkey, MsgRemoveStake(netuid, target, max(amount, 1)), own)

    @rule(coldkey=st.sampled_from(VALIDATORS), take=st.integers(0, 65_535), own=alone)
    def set_take(self, coldkey: str, take: int, own: bool) -> None:
        self.send(coldkey, MsgSetTake(key(f"{coldkey}/hot").address, take), own)

    @rule(validator=st.sampled_from((*VALIDATORS, "m1")),
          weights=st.lists(st.integers(0, 65_535), min_size=1, max_size=7), own=alone)
    def set_weights(self, validator: str, weights: list[int], own: bool) -> None:
        subnet = neurons.get_subnet(self.view(), 1)
        size = subnet["n"] if subnet else 0
        uids = list(range(min(size, len(weights))))
        self.send(f"{validator}/hot", MsgSetWeights(1, uids, weights[:len(uids)]), own)

    @rule()
    def until_epoch(self) -> None:
        self.driver.commit()
        subnet = neurons.get_subnet(self.view(), 1)
        if subnet is None:  # dissolved
            return
        tempo = subnet["params"]["tempo"]
        for _ in range(min(tempo + 2, 60)):  # a tempo raised by set_param is waited for 60 blocks at most
            self.driver.block()
            current = neurons.get_subnet(self.view(), 1)
            if current is None or current["epoch"] != subnet["epoch"]:
                return
        assert tempo + 2 > 60, f"no epoch within a tempo of {tempo} blocks"

    @rule(blocks=st.integers(1, 15))
    def advance(self, blocks: int) -> None:
        self.driver.commit()
        self.driver.advance(blocks)

    # --- market and escrow -------------------------------------------------------------------------------------

    @rule(tenant=st.sampled_from(TENANTS), models=st.sampled_from((("A100",), ("H100",), ("A100", "H100"), ("B200",))),
          gpus=st.integers(0, 5), max_price=st.integers(1, MINT), blocks=st.integers(1, 30), own=alone)
    def create_deployment(self, tenant: str, models: tuple[str, ...], gpus: int, max_price: int, blocks: int,
                          own: bool) -> None:
        self.send(tenant, MsgCreateDeployment(1_000, 2_048, gpus, list(models), 40, max_price, b"\x02" * 32,
                                              max_price * blocks), own)

    @rule(provider=st.sampled_from(PROVIDERS), order=pick, share=st.integers(1, 110), own=alone)
    def bid(self, provider: str, order: int, share: int, own: bool) -> None:
        order_id = chosen(self.orders(), order, 1)
        found = self.view().get_value(market.ORDER_PREFIX + order_id.to_bytes(8, "big"))
        price = max(1, (found["max_price"] if found else MINT) * share // 100)  # above 100%: above the max
        self.send(provider, MsgBid(order_id, price), own)

    @rule(order=pick, provider=st.sampled_from(PROVIDERS), stranger=st.booleans(), own=alone)
    def accept_bid(self, order: int, provider: str, stranger: bool, own: bool) -> None:
        order_id = chosen(self.orders(), order, 1)
        found = self.view().get_value(market.ORDER_PREFIX + order_id.to_bytes(8, "big"))
        tenant = "t1" if stranger or found is None else next(t for t in TENANTS if key(t).address == found["tenant"])
        self.send(tenant, MsgAcceptBid(order_id, key(provider).address), own)

    def lease_party(self, lease_id: int, who: str) -> str:
        lease = self.view().get_value(market.LEASE_PREFIX + lease_id.to_bytes(8, "big"))
        if lease is None or who == "stranger":
            return "d1"
        address = lease["tenant"] if who == "tenant" else lease["provider"]
        return next(name for name in COLDKEYS if key(name).address == address)

    @rule(tenant=st.sampled_from(TENANTS), provider=st.sampled_from(PROVIDERS), price=st.integers(1, MINT),
          blocks=st.sampled_from((500, 40, 12, 5, 2, 1)),  # hypothesis favours the first: long leases
          then=st.sampled_from(("withdraw", "top_up", "close", "none")), wait=st.integers(0, 6))
    def open_lease(self, tenant: str, provider: str, price: int, blocks: int, then: str, wait: int) -> None:
        """An order, a bid on it and its acceptance, a block each: a lease funded for ``blocks`` blocks; then, after
        ``wait`` blocks, its provider withdraws, its tenant tops it up, or the provider closes it (if still open)."""
        self.driver.commit()
        self.send(tenant, MsgCreateDeployment(1_000, 2_048, 1, [GPU_MODELS[provider]], 40, price, b"\x03" * 32,
                                              price * blocks), True)
        order_id = self.orders()[-1]
        self.send(provider, MsgBid(order_id, price), True)
        self.send(tenant, MsgAcceptBid(order_id, key(provider).address), True)
        self.driver.advance(wait)
        lease_id = self.leases()[-1]
        follow_up = {"withdraw": (provider, MsgWithdraw(lease_id)), "top_up": (tenant, MsgTopUp(lease_id, price * 3)),
                     "close": (provider, MsgCloseLease(lease_id, 2))}.get(then)
        if follow_up is not None:
            self.send(*follow_up, True)

    @rule(lease=pick, who=st.sampled_from(("tenant", "provider", "provider", "stranger")), reason=st.integers(0, 4),
          own=alone)
    def close_lease(self, lease: int, who: str, reason: int, own: bool) -> None:
        lease_id = chosen(self.leases(), lease, 1)
        self.send(self.lease_party(lease_id, who), MsgCloseLease(lease_id, reason), own)

    @rule(lease=pick, own=alone)
    def withdraw(self, lease: int, own: bool) -> None:
        lease_id = chosen(self.leases(), lease, 1)
        self.send(self.lease_party(lease_id, "provider"), MsgWithdraw(lease_id), own)

    @rule(lease=pick, amount=st.integers(1, 20 * MINT), own=alone)
    def top_up_lease(self, lease: int, amount: int, own: bool) -> None:
        lease_id = chosen(self.leases(), lease, 1)
        self.send(self.lease_party(lease_id, "tenant"), MsgTopUp(lease_id, amount), own)

    @rule(order=pick, tenant=st.sampled_from(TENANTS), own=alone)
    def close_deployment(self, order: int, tenant: str, own: bool) -> None:
        self.send(tenant, MsgCloseDeployment(chosen(self.orders(), order, 1)), own)

    # --- credit ----------------------------------------------------------------------------------------------

    @rule(consumer=st.sampled_from(CONSUMERS), amount=st.integers(1, 200 * MINT), duration=st.integers(0, 60),
          cap=st.sampled_from((0, 0, MINT // 100, 10 * MINT)), own=alone)
    def open_credit(self, consumer: str, amount: int, duration: int, cap: int, own: bool) -> None:
        self.send(consumer, MsgOpenCredit(GATEWAY_ADDRESS, amount, duration, 2_000_000, 1_000, cap,
                                          10 if cap else 0), own)

    @rule(consumer=st.sampled_from(CONSUMERS), amount=st.integers(1, 50 * MINT), extend=st.integers(0, 20),
          own=alone)
    def top_up_credit(self, consumer: str, amount: int, extend: int, own: bool) -> None:
        self.send(self.with_line(consumer), MsgTopUpCredit(GATEWAY_ADDRESS, amount, extend), own)

    @rule(consumer=st.sampled_from(CONSUMERS), wait=st.sampled_from((4, 0, 2)), own=alone)
    def close_credit(self, consumer: str, wait: int, own: bool) -> None:
        """Close a line early and, after ``wait`` blocks (the notice is 4), reclaim it."""
        consumer = self.with_line(consumer)
        self.send(consumer, MsgCloseCredit(GATEWAY_ADDRESS), own or bool(wait))
        if wait:
            self.driver.advance(wait)
            self.send(consumer, MsgReclaimCredit(GATEWAY_ADDRESS), own)

    @rule(consumer=st.sampled_from(CONSUMERS), own=alone)
    def reclaim_credit(self, consumer: str, own: bool) -> None:
        self.send(consumer, MsgReclaimCredit(GATEWAY_ADDRESS), own)

    @rule(fee_bps=st.sampled_from((0, 250, 1_000, 2_500)), bond=st.integers(0, 10 * MINT), own=alone)
    def register_gateway(self, fee_bps: int, bond: int, own: bool) -> None:
        self.send(GATEWAY, MsgRegisterGateway("https://gateway.example", fee_bps, bond), own)

    def receipt_entry(self, consumer: str, miner: str, tokens: int, requests: int, kind: str,
                      acknowledged: bool) -> list[Any]:
        """The miner's next cumulative receipt on the consumer's line (``kind``: "fair" at most the line's price,
        "over" one grain above it, "stale" the last one again), signed by its hotkey, and the gateway's
        acknowledgement for a claim. Written on a line that exists where any does."""
        consumer = self.with_line(consumer)
        line = self.line(consumer)
        line_id, price = (int(line["id"]), int(line["max_price_per_1k"])) if line else (10**6, 1_000_000)
        hotkey = f"{miner}/hot"
        last = self.signed.get((line_id, hotkey), (0, 0, 0))
        paid = tuple(credit.get_paid(self.view(), line_id, key(hotkey).address))
        if kind == "stale" and (paid[1] or last[1]):
            total = paid if paid[1] else last  # what the line has paid already, or the last receipt again
        else:
            total_tokens, total_requests = last[0] + tokens, last[2] + requests
            total_grains = credit.max_grains(total_tokens, total_requests, price) + (kind == "over")
            total = (total_tokens, max(total_grains, last[1] + 1), total_requests)
            self.signed[(line_id, hotkey)] = max(last, total)
        receipt = Receipt(CHAIN_ID, line_id, GATEWAY_ADDRESS, key(consumer).address, key(hotkey).address, *total)
        entry = [key(consumer).address, key(hotkey).public_key, *total, sign_receipt(key(hotkey), receipt)]
        if acknowledged:
            entry.append(acknowledge_receipt(key(GATEWAY), receipt))
        return entry

    @rule(entries=entries, batch_id=st.sampled_from(("next", "next", "replayed")), own=alone)
    def settle(self, entries: list[tuple[str, str, int, int, str]], batch_id: str, own: bool) -> None:
        last = int(credit.get_gateway(self.view(), GATEWAY_ADDRESS)["last_batch"])
        batch = last if batch_id == "replayed" else last + 1 + len(self.driver.queued)
        signed = [self.receipt_entry(*entry, acknowledged=False) for entry in entries]
        self.send(GATEWAY, MsgSettle(batch, signed), own)

    @rule(kind=st.sampled_from(("over", "stale")), claim=st.booleans(), own=alone)
    def bad_receipt(self, kind: str, claim: bool, own: bool) -> None:
        """One receipt the chain must refuse (above the line's price, or not newer than what was paid)."""
        entry = self.receipt_entry("c1", "m1", 1_000, 1, kind, acknowledged=claim)
        if claim:
            self.send("m1", MsgClaim(GATEWAY_ADDRESS, key(GATEWAY).public_key, [entry]), own)
        else:
            last = int(credit.get_gateway(self.view(), GATEWAY_ADDRESS)["last_batch"])
            self.send(GATEWAY, MsgSettle(last + 1 + len(self.driver.queued), [entry]), own)

    @rule(entries=entries, claimant=st.sampled_from(("m1", "m2", "d1")), own=alone)
    def claim(self, entries: list[tuple[str, str, int, int, str]], claimant: str, own: bool) -> None:
        acknowledged = [self.receipt_entry(*entry, acknowledged=True) for entry in entries]
        self.send(claimant, MsgClaim(GATEWAY_ADDRESS, key(GATEWAY).public_key, acknowledged), own)

    @rule()
    def block(self) -> None:
        self.driver.commit()


def run_machine(examples: int, steps: int, derandomize: bool = False) -> None:
    chosen = settings(max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=derandomize,
                      suppress_health_check=list(HealthCheck))
    run_state_machine_as_test(ChainMachine, settings=settings(chosen, database=None) if derandomize else chosen)


# What the lean run must reach for its green to mean something: each is a success (or an event) of the workload.
REACHED = [("bank/send", "ok"), ("subnets/register", "ok"), ("subnets/create", "ok"), ("staking/add", "ok"),
           ("staking/remove", "ok"), ("weights/set", "ok"), ("market/create_deployment", "ok"), ("market/bid", "ok"),
           ("market/accept_bid", "ok"), ("market/close_lease", "ok"), ("market/withdraw", "ok"),
           ("market/top_up", "ok"), ("credit/open", "ok"), ("credit/top_up", "ok"), ("credit/settle", "ok"),
           ("credit/claim", "ok"), ("credit/close", "ok"), ("credit/reclaim", "ok"), ("event", "epoch"),
           ("event", "escrow_exhausted"), ("event", "order_expired")]
# Receipts the chain must refuse, in a settlement or a claim (a batch stops at its first bad entry).
REFUSED = ["receipt_stale", "above_max_price"]


def check_workload(examples: int, steps: int, derandomize: bool) -> None:
    ChainMachine.outcomes.clear()
    started = time.monotonic()
    run_machine(examples, steps, derandomize)
    reached = ChainMachine.outcomes
    print(f"\n{examples} runs of up to {steps} steps in {time.monotonic() - started:.1f} s; outcomes:",
          dict(sorted(reached.items())))
    missing = [outcome for outcome in REACHED if not reached[outcome]]
    missing += [name for name in REFUSED if not reached[("credit/settle", name)] + reached[("credit/claim", name)]]
    assert missing == [], f"the workload never reached {missing}"


def test_every_module_keeps_its_invariants_under_a_random_workload_and_a_replay_agrees() -> None:
    check_workload(EXAMPLES, STEPS, derandomize=True)


@pytest.mark.long
@pytest.mark.skipif(not os.environ.get("GRIDMINT_LONG"), reason="long run: set GRIDMINT_LONG=1")
def test_invariant_machine_long_run() -> None:
    check_workload(LONG_EXAMPLES, LONG_STEPS, derandomize=False)


# --- tests of the test: a deliberate bug must make the machine fail -------------------------------------------


def caught(examples: int = 6) -> str:
    """Run the machine lean and without shrinking; returns the failure it must report."""
    with pytest.raises(Exception) as failure:  # the assertions below name what must have failed
        run_state_machine_as_test(ChainMachine, settings=settings(
            max_examples=examples, stateful_step_count=STEPS, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), phases=[Phase.generate]))
    return f"{type(failure.value).__name__}: {failure.value}"


def test_the_machine_catches_an_escrow_that_pays_a_grain_it_does_not_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    settle = escrow._settle

    def one_grain_too_many(account: dict[str, Any], height: int) -> None:
        before = account["settled"]
        settle(account, height)
        if account["settled"] > before:
            account["withdrawable"] += 1  # earned one grain more than the balance gave up

    monkeypatch.setattr(escrow, "_settle", one_grain_too_many)
    failure = caught()
    # The invariant breaks; or the bank refuses to pay out a grain escrow does not hold: in a transaction (an
    # internal error) or in the block's end, which halts the node (the exception escapes finalize_block).
    assert any(sign in failure for sign in ("escrow/held", "internal error", "module escrow gives")), failure


def test_the_machine_catches_an_unstake_that_releases_a_grain_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    remove = staking.remove_stake

    def one_grain_too_many(state: Any, netuid: int, uid: int, hotkey: bytes, coldkey: bytes, amount: int) -> int:
        returned = remove(state, netuid, uid, hotkey, coldkey, amount)
        bank.credit(state, coldkey, 1)
        return returned

    monkeypatch.setattr(staking, "remove_stake", one_grain_too_many)
    assert "bank/supply" in caught()


def test_the_machine_catches_a_settlement_that_skips_the_gateways_fee(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fee leaves the line but is never released to the gateway: the credit module holds less than it books.
    write = credit._write

    def fee_kept(ctx: Any, batch: Any) -> None:
        batch.fees = 0 if batch.fees == 0 else batch.fees - 1
        write(ctx, batch)

    monkeypatch.setattr(credit, "_write", fee_kept)
    assert "credit/held" in caught()


def test_the_machine_catches_a_bid_that_skips_its_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    hold = bank.hold

    def skip_bid_deposit(state: Any, account: bytes, module: str, amount: int, purpose: str) -> None:
        if purpose != "the bid deposit":
            hold(state, account, module, amount, purpose)

    monkeypatch.setattr(bank, "hold", skip_bid_deposit)
    assert "market/held" in caught()


def test_the_machine_catches_an_unforeseen_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    claim = credit.process_claim

    def crash_on_two_entries(ctx: Any, msg: MsgClaim) -> None:
        if len(msg.entries) >= 2:
            raise KeyError("a bug")
        claim(ctx, msg)

    monkeypatch.setitem(credit.MODULE.handlers, MsgClaim, crash_on_two_entries)
    assert "internal error" in caught()


def test_the_replay_catches_a_handler_that_reads_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    set_take = staking.process_set_take

    def stamped(ctx: Any, msg: MsgSetTake) -> None:
        set_take(ctx, msg)
        ctx.state.set_int(b"staking/last_take_at", time.perf_counter_ns())  # differs on every node

    monkeypatch.setitem(staking.MODULE.handlers, MsgSetTake, stamped)
    assert "replay" in caught()
