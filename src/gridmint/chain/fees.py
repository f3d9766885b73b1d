"""fees: what a transaction must pay, in proportion to the work and the state its messages cause.

A transaction's fee must be at least ``min_tx_fee + fee_per_unit × units`` (bank parameters), where ``units`` is
the sum over its messages of the schedule below plus one unit per byte of memo; a lower fee is refused with
``fee_too_low`` naming the amount required, before anything changes. ``min_tx_fee`` pays for the envelope (decoding,
the signature, the nonce); a *work unit* is about one microsecond of this chain's processing on the reference
machine, or one byte it keeps. Clients compute the same number with ``compute_required_fee`` (the one function the
chain uses), from the messages and what the chain says about the subnets they touch.

How the schedule prices work (integers only; ``U`` is the subnet's ``max_uids``, the most UIDs it can hold,
read as the transaction leaves it):
- **Bytes kept.** Text a message stores (URLs, names, models, tags) costs ``BYTE`` per byte.
- **Per-UID vectors.** Registering rewrites the subnet's ten per-UID vectors and may prune (a scan of every UID):
  ``VECTOR`` per UID per vector plus ``PRUNE_SCAN`` per UID, whether or not this registration prunes. Stake and
  weight changes rewrite one vector. Each registration also prepays removing its UID when the subnet dissolves,
  and each bid its refund, so ``subnets/dissolve``, ``market/accept_bid`` and ``market/close_deployment`` are flat.
- **Weights** cost ``PER_WEIGHT`` per entry on top of the vector they rewrite.
- **Epoch shape.** Creating a subnet, or setting its ``tempo``, ``max_uids`` or ``max_validators``, prepays
  ``epoch_fee_blocks`` blocks of the epoch work the resulting shape causes: ``cells × epoch_fee_blocks /
  tempo × EPOCH_UNITS_PER_KILOCELL / 1,000``, with cells as subnets.compute_epoch_cells counts them (one epoch at
  the caps, 1,069,056 cells, took 641 ms with its reads, writes and payouts: 0.6 unit a cell).

A block's work is at most ``max_block_units``: the epochs due at its end are reserved first (``get_reserved_units``;
a subnet whose shape changed in the block waits for the next one, so no transaction adds an unreserved epoch),
then transactions take the rest, each counted with ``ENVELOPE_UNITS`` for its envelope, less the epoch work it
prepays (later blocks do that within their own budget). A transaction that does not fit is refused with
``block_full`` and changes nothing (not even its nonce), so it can be sent again.

**Deleting commitments.** Each commitment's fee prepays its deletion as state, but the block that deletes it does
the work: a registration may prune a hotkey that kept ``retention_epochs`` commitments on the subnet (up to 1,024,
deleted in its block), and a dissolve starts end_block's clearing of the subnet's commitments, ``cleared_per_block``
a block. So a registration costs ``COMMITMENT_DELETION × retention_epochs`` more and a dissolve ``COMMITMENT_DELETION
× cleared_per_block`` (commitments parameters), in its fee as in its block units (block units a sender does not pay
for would let anyone fill blocks cheaply with transactions that fail), and while subnets wait in the dissolved
queue each block reserves ``cleared_per_block × COMMITMENT_DELETION`` units before any transaction, as it reserves
its epochs.

**The other end-block queues** are reserved the same way: while closed staking pools wait to return positions,
each block reserves ``returns_per_block × STAKE_RETURN`` (staking parameters; a pool closed by a block's own
transactions is returned from the next block on, which reserves it); a block in which escrow accounts fall due
reserves ``ESCROW_CLOSURE`` for each it will close (at most ``closures_per_block``); and a block in which orders
expire reserves ``BID_REFUND`` for each order and bid it may end (``expiries_per_block``, or one order with
``max_bids`` bids if that is more). A message that ends an order in a transaction (``market/accept_bid``,
``market/close_deployment``) counts ``max_bids × BID_REFUND`` more against its block: the bids prepaid their
refunds in their own fees, but this block does them. At the defaults the four queues reserve at most 304,800 units
together, so that with the largest epoch (641,434 units, which always runs) a block's end-block work stays under
950,000 units; at their bounds, 456,100.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gridmint.chain import (
    authority,
    bank,
    commitments,
    credit,
    emission,
    escrow,
    market,
    neurons,
    staking,
    subnets,
    weights,
)
from gridmint.chain.errors import register
from gridmint.chain.params import params_to_json
from gridmint.chain.state import Reader
from gridmint.chain.tx import Msg, TxBody

BLOCK_FULL = register("fees", 1, "block_full")

# --- the schedule, in work units ---------------------------------------------------------------------------
BYTE = 1  # per byte of text kept in state (and of memo)
VECTOR = 8  # per UID of each per-UID vector a message rewrites (one int64 each)
VECTORS_ON_REGISTER = len(neurons.VECTORS)
PRUNE_SCAN = 2  # per UID: the candidates for pruning are scanned when the subnet is full
REMOVAL = 50  # a registration's share of its later removal (stakes returned, keys deleted on dissolve)
PER_WEIGHT = 6  # per weight entry: checked, stored (4 bytes) and read at each epoch
# Per credit/settle or credit/claim entry: a miner lookup, a line update, a payment (100), the (line, miner) paid
# record read and written, with its share of the deletion when the line is reclaimed (PAID_RECORD), and the
# receipt's signature checks: one ed25519 verification of ~110 bytes took 55-60 µs on the 2-core reference machine
# (17-18k/s; up to ~115 µs while other work shares the cores), so RECEIPT_VERIFY units each. A settlement checks
# the miner's signature; a claim the miner's and the gateway's acknowledgement.
PAID_RECORD = 20
RECEIPT_VERIFY = 60
PER_SETTLE_ENTRY = 100 + PAID_RECORD + RECEIPT_VERIFY
PER_CLAIM_ENTRY = 100 + PAID_RECORD + 2 * RECEIPT_VERIFY
# A bid prepays its refund when the order is accepted, closed or expires: one release, which also carries the
# bid's share of the order's hold deposit (so an expiry pays at most max_bids releases, each prepaid here).
BID_REFUND = 100
# Units per thousand epoch cells, the whole epoch counted (Yuma, state reads and writes, payouts): one at the caps,
# 1,069,056 cells, took 641 ms in bench/adversarial_block.py (its Yuma math alone 80-100 ms).
EPOCH_UNITS_PER_KILOCELL = 600
ENVELOPE_UNITS = 300  # what an envelope counts against max_block_units: decoding, an unseen signature (~250 µs)
# Per commitment deleted (its two keys, with the block's digest and commit): 65,536 pruned by 64 registrations in one
# block took 4.8 s (73 µs each, registrations included) on the 2-core reference machine; 50-140 µs under load.
COMMITMENT_DELETION = 100
# Per staked position a closed pool returns at the end of a block (its slot and position read and deleted, the
# staker's balance and staking's hold written): 72 µs from one large pool, 148 µs from pools of one position each
# (the pool read, written and deleted, and an event, per position).
STAKE_RETURN = 150
# Per escrow account closed at the end of a block (read, settled, provider and tenant paid, written back): 55-85 µs
# on the reference machine.
ESCROW_CLOSURE = 100

ShapeLookup = Callable[[int], Mapping[str, int] | None]  # netuid -> its hyperparameters, None if no such subnet
NewShape = Callable[[], Mapping[str, int]]  # the hyperparameters a subnet created now starts with


class Shapes:
    """The hyperparameters of the subnets a transaction touches, as its messages leave them: each
    ``subnets/set_param`` within bounds is applied in order, so a later message is priced on the new shape.
    An unknown netuid gets a new subnet's hyperparameters (one created earlier in the same transaction)."""

    def __init__(self, lookup: ShapeLookup, new_subnet: NewShape,
                 deleting: Callable[[], commitments.Params] | None = None,
                 max_bids: Callable[[], int] | None = None) -> None:
        self._lookup = lookup
        self._new_subnet = new_subnet
        self._deleting = deleting or commitments.Params
        self._max_bids = max_bids or (lambda: market.Params().max_bids)
        self._known: dict[int, dict[str, int]] = {}
        self.epoch_prepaid = 0  # units of future epoch work priced so far: paid now, not worked in this block
        self.refunds_done = 0  # units of bid refunds prepaid by earlier bids and worked in this block

    @functools.cached_property
    def deleting(self) -> commitments.Params:
        """What bounds the commitment deletions a message causes (read only for a message that deletes)."""
        return self._deleting()

    def refund_bids(self) -> None:
        """A message ends an order in its block: up to ``max_bids`` bids are refunded there (the market's params)."""
        self.refunds_done += self._max_bids() * BID_REFUND

    def of(self, netuid: int) -> subnets.Hyperparams:
        return subnets.Hyperparams(**self._raw(netuid))

    def new_subnet(self) -> subnets.Hyperparams:
        return subnets.Hyperparams(**self._new_subnet())

    def apply(self, netuid: int, param: str, value: int) -> None:
        bounds = subnets.HYPERPARAM_BOUNDS.get(param)
        if bounds is not None and bounds[0] <= value <= bounds[1]:  # the message fails otherwise: nothing to apply
            self._raw(netuid)[param] = value

    def _raw(self, netuid: int) -> dict[str, int]:
        if netuid not in self._known:
            found = self._lookup(netuid)
            self._known[netuid] = dict(found if found is not None else self._new_subnet())
        return self._known[netuid]


def compute_epoch_units(hyper: subnets.Hyperparams, epoch_fee_blocks: int) -> int:
    """The epoch work of ``epoch_fee_blocks`` blocks of a subnet of this shape, in units."""
    cells = subnets.compute_epoch_cells(hyper.max_uids, hyper.max_validators)
    return cells * EPOCH_UNITS_PER_KILOCELL * epoch_fee_blocks // (hyper.tempo * 1_000)


def get_reserved_units(state: Reader, height: int) -> int:
    """What the end of block ``height`` takes from its ``max_block_units`` before any transaction (its due epochs
    and the queues end_block works through): end-block work and transactions share one budget."""
    cells = sum(cells for _, _, cells in emission.select_epochs(state, neurons.netuids(state), height))
    clearing = commitments.get_params(state).cleared_per_block if commitments.is_clearing(state) else 0
    returning = staking.get_params(state).returns_per_block if staking.is_returning(state) else 0
    closing = escrow.count_due(state, height)
    expiring = 0
    if market.has_due_orders(state, height):  # the first due order always goes, with all of its bids
        trade = market.get_params(state)
        expiring = max(trade.expiries_per_block, 1 + trade.max_bids)
    return (cells * EPOCH_UNITS_PER_KILOCELL // 1_000 + clearing * COMMITMENT_DELETION + returning * STAKE_RETURN
            + closing * ESCROW_CLOSURE + expiring * BID_REFUND)


def _prepay_epochs(shapes: Shapes, hyper: subnets.Hyperparams, params: bank.Params) -> int:
    units = compute_epoch_units(hyper, params.epoch_fee_blocks)
    shapes.epoch_prepaid += units
    return units


def _ending_order(units: int) -> Callable[[Msg, Shapes, bank.Params], int]:
    """A message that ends an order: its bids' refunds were prepaid by the bids, but its block does them."""
    def rule(message: Msg, shapes: Shapes, params: bank.Params) -> int:
        shapes.refund_bids()
        return units
    return rule


def _text_bytes(*texts: str | Sequence[str]) -> int:
    total = 0
    for item in texts:
        total += len(item.encode()) if isinstance(item, str) else sum(len(t.encode()) for t in item)
    return total


def _register_units(msg: Any, shapes: Shapes, params: bank.Params) -> int:
    uids = shapes.of(msg.netuid).max_uids
    pruned_commitments = shapes.deleting.retention_epochs  # the pruned hotkey's, deleted in this block
    return 500 + REMOVAL + uids * (VECTOR * VECTORS_ON_REGISTER + PRUNE_SCAN) + COMMITMENT_DELETION * pruned_commitments


def _dissolve_units(msg: Any, shapes: Shapes, params: bank.Params) -> int:
    return 500 + COMMITMENT_DELETION * shapes.deleting.cleared_per_block  # its block's end_block starts clearing


def _weights_units(msg: Any, shapes: Shapes, params: bank.Params) -> int:
    return 200 + PER_WEIGHT * len(msg.uids) + (VECTOR + 1) * shapes.of(msg.netuid).max_uids


def _set_param_units(msg: Any, shapes: Shapes, params: bank.Params) -> int:
    shapes.apply(msg.netuid, msg.param, msg.value)
    if msg.param not in subnets.EPOCH_SHAPE_PARAMS:
        return 100
    return 100 + _prepay_epochs(shapes, shapes.of(msg.netuid), params)


def _create_units(msg: Any, shapes: Shapes, params: bank.Params) -> int:
    return 500 + BYTE * _text_bytes(msg.modality, msg.name) + _prepay_epochs(shapes, shapes.new_subnet(), params)


@dataclass(frozen=True)
class Rule:
    """One message type's price: ``units(message, shapes, params)`` and the same rule in words (docs/chain.md).
    ``flat``: the units of a rule that reads neither the message nor the chain (most messages), so that pricing a
    transaction of only such messages, a transfer say, costs an addition: every transaction is priced three times
    (check_tx, the proposal, its block)."""

    units: Callable[[Any, Shapes, bank.Params], int]
    words: str
    flat: int | None = None


def _flat(units: int) -> Rule:
    return Rule(lambda msg, shapes, params: units, str(units), units)


SCHEDULE: dict[type[Msg], Rule] = {
    bank.MsgSend: _flat(30),
    authority.MsgPropose: Rule(lambda m, s, p: 100 + BYTE * _text_bytes(m.name), "100 + 1/byte of name"),
    authority.MsgVote: _flat(100),
    subnets.MsgCreateSubnet: Rule(_create_units, "500 + 1/byte of modality and name + epoch shape of a new subnet"),
    subnets.MsgSetHyperparam: Rule(_set_param_units, "100, + epoch shape for tempo, max_uids, max_validators"),
    subnets.MsgDissolveSubnet: Rule(_dissolve_units, f"500 + {COMMITMENT_DELETION}·cleared_per_block (commitments)"),
    subnets.MsgRegister: Rule(_register_units, f"{500 + REMOVAL} + {VECTOR * VECTORS_ON_REGISTER + PRUNE_SCAN}·U + "
                                               f"{COMMITMENT_DELETION}·retention_epochs (commitments)"),
    subnets.MsgAnnounceEndpoint: Rule(lambda m, s, p: 200 + BYTE * _text_bytes(m.url, m.models),
                                      "200 + 1/byte of url and models"),
    staking.MsgAddStake: Rule(lambda m, s, p: 300 + VECTOR * s.of(m.netuid).max_uids, f"300 + {VECTOR}·U"),
    staking.MsgRemoveStake: Rule(lambda m, s, p: 200 + VECTOR * s.of(m.netuid).max_uids, f"200 + {VECTOR}·U"),
    staking.MsgSetTake: _flat(50),
    weights.MsgSetWeights: Rule(_weights_units, f"200 + {PER_WEIGHT}/weight + {VECTOR + 1}·U"),
    weights.MsgCommitWeights: Rule(lambda m, s, p: 200 + s.of(m.netuid).max_uids, "200 + 1·U"),
    weights.MsgRevealWeights: Rule(_weights_units, f"200 + {PER_WEIGHT}/weight + {VECTOR + 1}·U"),
    market.MsgRegisterProvider: Rule(lambda m, s, p: 300 + BYTE * _text_bytes(m.host_uri, m.gpu_model, m.region,
                                                                                m.tags),
                                     "300 + 1/byte of host_uri, gpu_model, region and tags"),
    market.MsgCreateDeployment: Rule(lambda m, s, p: 400 + BYTE * _text_bytes(m.gpu_models),
                                     "400 + 1/byte of gpu_models"),
    market.MsgBid: _flat(300 + BID_REFUND),
    market.MsgAcceptBid: Rule(_ending_order(500), "500; its block counts max_bids × BID_REFUND more (prepaid)"),
    market.MsgCloseLease: _flat(300),
    market.MsgWithdraw: _flat(200),
    market.MsgTopUp: _flat(200),
    market.MsgCloseDeployment: Rule(_ending_order(300),
                                    "300; its block counts max_bids × BID_REFUND more (prepaid)"),
    credit.MsgRegisterGateway: Rule(lambda m, s, p: 300 + BYTE * _text_bytes(m.url), "300 + 1/byte of url"),
    credit.MsgOpenCredit: _flat(200),
    credit.MsgTopUpCredit: _flat(200),
    credit.MsgCloseCredit: _flat(100),
    credit.MsgSettle: Rule(lambda m, s, p: 300 + PER_SETTLE_ENTRY * len(m.entries),
                           f"300 + {PER_SETTLE_ENTRY}/entry"),
    credit.MsgClaim: Rule(lambda m, s, p: 300 + PER_CLAIM_ENTRY * len(m.entries), f"300 + {PER_CLAIM_ENTRY}/entry"),
    credit.MsgReclaimCredit: _flat(200),
    # A commitment keeps its 32-byte hash and its data twice keyed (by epoch and by block) and prunes at most two
    # expired ones: flat work, and state paid by the byte.
    commitments.MsgCommit: Rule(lambda m, s, p: 200 + BYTE * len(m.data), "200 + 1/byte of data"),
}


@dataclass(frozen=True)
class TxCost:
    units: int  # work units of the messages and memo
    fee: int  # grains the fee must reach
    block_units: int  # what it counts against max_block_units: its envelope and units, less prepaid epoch work
    # (never below ENVELOPE_UNITS: the epoch work a message prepays is part of its units)


def compute_tx_cost(params: bank.Params, messages: Sequence[Msg], memo: str, lookup: ShapeLookup,
                    new_subnet: NewShape, deleting: Callable[[], commitments.Params] | None = None,
                    max_bids: Callable[[], int] | None = None) -> TxCost:
    """What a transaction of ``messages`` costs under ``params``; the chain and every client call this.
    ``deleting``: reads the chain's commitments parameters, which bound the deletions a registration or a dissolve
    causes (their defaults when not given); ``max_bids``: the market's, which bounds the refunds ending an order
    causes. Each is called only for a message that needs it. The fee is the same whatever they are; the block units
    are not."""
    shapes: Shapes | None = None
    units = BYTE * len(memo.encode())
    for msg in messages:
        rule = SCHEDULE[type(msg)]
        if rule.flat is not None:
            units += rule.flat
            continue
        if shapes is None:
            shapes = Shapes(lookup, new_subnet, deleting, max_bids)
        units += rule.units(msg, shapes, params)
    adjustment = 0 if shapes is None else shapes.refunds_done - shapes.epoch_prepaid
    return TxCost(units, params.min_tx_fee + params.fee_per_unit * units, ENVELOPE_UNITS + units + adjustment)


def compute_required_fee(params: bank.Params, messages: Sequence[Msg], memo: str, lookup: ShapeLookup,
                         new_subnet: NewShape, deleting: Callable[[], commitments.Params] | None = None) -> int:
    return compute_tx_cost(params, messages, memo, lookup, new_subnet, deleting).fee


def get_tx_cost(state: Reader, body: TxBody, params: bank.Params | None = None) -> TxCost:
    """``compute_tx_cost`` against the chain's state (the app calls this in the envelope stage); ``params``: the
    bank's parameters in ``state``, where the caller has read them already."""

    def lookup(netuid: int) -> Mapping[str, int] | None:
        subnet = neurons.get_subnet(state, netuid)
        return None if subnet is None else subnet["params"]

    def new_subnet() -> Mapping[str, int]:
        return params_to_json(subnets.Hyperparams(tempo=subnets.get_params(state).default_tempo))

    return compute_tx_cost(params or bank.get_params(state), body.messages, body.memo, lookup, new_subnet,
                           lambda: commitments.get_params(state), lambda: market.get_params(state).max_bids)


def check_block_room(params: bank.Params, cost: TxCost, used: int) -> None:
    """Refuse a transaction that does not fit in what is left of the block (``used`` units so far; 0 in check_tx,
    where this refuses one that could fit in no block)."""
    if used + cost.block_units > params.max_block_units:
        if used == 0:
            raise BLOCK_FULL(f"this transaction's {cost.block_units} work units exceed a block's "
                             f"{params.max_block_units}; split it into smaller transactions")
        raise BLOCK_FULL(f"the block has {params.max_block_units - used} of its {params.max_block_units} work units "
                         f"left, this transaction needs {cost.block_units}; send it again for a later block")


@dataclass(frozen=True)
class Fitting:
    positions: list[int]  # of the transactions, in order, that go in the block
    full: bool  # one waits for want of room, and at least half the room is taken: more blocks are due at once


def select_fitting(state: Reader, bodies: Sequence[TxBody | None], height: int) -> Fitting:
    """The positions of the transactions, in order, that a proposer should put in block ``height`` so that they
    fit in what its due epochs leave of ``max_block_units``, priced on ``state`` (what the block runs on: the
    last committed state, or the genesis before the first block). A transaction that does not fit is passed over,
    with every later one of its signer (their nonces follow it), and the rest still get their turn: one
    transaction too large for this block holds back no one else's.
    ``None`` stands for one that will not decode: it is left out. Proposers (the devnode, ABCI PrepareProposal)
    call this, and ProcessProposal checks that a proposal keeps to it.

    ``full`` tells a proposer with a backlog that the next block can follow at once. Half the room must be taken:
    a transaction that fits in no block left over (a large one behind a full epoch reserve) must not make every
    later block follow at once for the price of one small transaction each."""
    params = bank.get_params(state)
    room = params.max_block_units - get_reserved_units(state, height)
    used = 0
    waiting = False
    chosen: list[int] = []
    passed_over: set[bytes] = set()
    for position, body in enumerate(bodies):
        if body is None:  # it would fail in the block, and a proposer has no reason to include it
            continue
        if room - used < ENVELOPE_UNITS:  # no transaction counts less: none of the rest can fit (a backlog's tail)
            waiting = True
            break
        if body.signer in passed_over:
            continue
        units = get_tx_cost(state, body, params).block_units
        if used + units > room:
            passed_over.add(body.signer)
            waiting = True
            continue
        used += units
        chosen.append(position)
    return Fitting(chosen, waiting and used > 0 and 2 * used >= room)
