"""emission: the block reward, accrued per subnet every block and paid at each subnet's epoch by Yuma consensus.

- **Schedule.** The reward of block h is ``initial_reward >> (h // halving_interval)`` grains, and nothing once
  ``cap`` grains have been minted in total (the last block is cut to land on the cap exactly). Defaults:
  1 MINT per block, halving every 10,512,000 blocks, cap 21,000,000 MINT.
- **Split across subnets.** Equal shares among the subnets that exist in that block, to the grain (the largest
  remainder method gives leftover grains to the lowest netuids). No subnet: nothing is minted.
- **Accrual.** Each subnet's share is minted into this module's keeping and booked as the subnet's pending
  emission, so supply grows by exactly the block rewards.
- **Epoch** (due when ``tempo`` blocks have passed since the last one): Yuma consensus (chain/yuma.py) on the
  subnet's stake, weights and bonds, then the pending emission E is paid: ``owner_share_bps`` (18%) to the owner,
  ``miner_share_bps`` (41%) to miners by incentive, the rest (41%) to validators by dividends (shares in basis
  points, at most 10,000 together; each validator keeps its take and compounds the rest into its
  stakers' share pool, chain/staking.py: one write per validator, whatever the number of its stakers).
  Without incentive the miners' part goes to validators; without dividends the validators' part goes by
  active stake; with no stake at all it stays pending for the next epoch.
- **Scheduling.** Epochs that are due run longest-due first (ties: lower netuid) while their cost fits in the
  block's ``epoch_budget`` (subnets.py, "Epoch cost bounds"); the first always runs, the rest wait for the next
  block, where they come first. A subnet whose tempo, max_uids or max_validators changed in this block waits too
  (the block's transactions were admitted against the epochs due before them, chain/fees.py). A subnet that
  waited keeps accruing, so nothing is lost, only paid a little later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridmint.chain import bank, neurons, staking
from gridmint.chain import subnets as subnets_module
from gridmint.chain.errors import INVALID_GENESIS
from gridmint.chain.module import Context, EventData, ModuleSpec, event
from gridmint.chain.module_genesis import ModuleGenesis, SectionState
from gridmint.chain.params import params_reader, params_to_json
from gridmint.chain.query_args import expect_args
from gridmint.chain.records import INT, RecordKind
from gridmint.chain.state import Reader, State
from gridmint.chain.subnets import get_hyperparams
from gridmint.chain.units import GRAINS_PER_MINT, MAX_U64
from gridmint.chain.weights import get_weights
from gridmint.chain.yuma import EpochInput, EpochOutput, run_epoch, split_exactly

NAME = "emission"
BPS = 10_000  # shares of an epoch's emission are in basis points


@dataclass(frozen=True)
class Params:
    initial_reward: int = GRAINS_PER_MINT
    halving_interval: int = 10_512_000
    cap: int = 21_000_000 * GRAINS_PER_MINT
    owner_share_bps: int = 1_800  # of each epoch's emission, to the subnet's owner
    miner_share_bps: int = 4_100  # to miners by incentive; validators get the rest (4,100)


BOUNDS = {"initial_reward": (0, MAX_U64), "halving_interval": (1, MAX_U64), "cap": (0, MAX_U64),
          "owner_share_bps": (0, BPS), "miner_share_bps": (0, BPS)}  # and together at most BPS (validate_genesis)

# --- state -------------------------------------------------------------------------------------------------
# emission/params  -> Params
# emission/minted  -> grains minted by emission so far
# and subnets/pending/<netuid> (neurons.py): what each subnet has accrued since its last epoch.

PARAMS_KEY = b"emission/params"
MINTED_KEY = b"emission/minted"


get_params = params_reader(PARAMS_KEY, Params)


def compute_block_reward(params: Params, height: int, minted: int) -> int:
    reward = params.initial_reward >> min(height // params.halving_interval, 127)
    return max(0, min(reward, params.cap - minted))


# --- events ----------------------------------------------------------------------------------------------


@event("epoch")
class EpochRun(EventData):
    """A subnet's epoch ran and paid its emission."""

    netuid: int
    epoch: int
    paid: int
    pending: int


# --- block hooks -------------------------------------------------------------------------------------------


def end_block(ctx: Context) -> None:
    state, height = ctx.state, ctx.block.height
    subnets = neurons.netuids(state)
    if not subnets:
        return
    minted = state.get_int(MINTED_KEY)
    reward = compute_block_reward(get_params(state), height, minted)
    if reward:
        bank.mint_held(state, NAME, reward)
        state.set_int(MINTED_KEY, minted + reward)
        for netuid, share in zip(subnets, split_exactly(reward, [1] * len(subnets)), strict=True):
            neurons.set_pending(state, netuid, neurons.get_pending(state, netuid) + share)
    for netuid, subnet, _ in select_epochs(state, subnets, height):
        run_subnet_epoch(ctx, netuid, subnet)


def select_epochs(state: Reader, subnets: list[int], height: int) -> list[tuple[int, dict[str, Any], int]]:
    """The due epochs this block runs, in the order ``schedule_epochs`` gives: ``(netuid, subnet, cells)``."""
    due: list[tuple[int, int, int]] = []
    found: dict[int, tuple[dict[str, Any], int]] = {}
    for netuid in subnets:
        subnet = neurons.require_subnet(state, netuid)
        hyper = get_hyperparams(subnet)
        if height - subnet["last_epoch"] >= hyper.tempo and subnet.get("shape_block", 0) != height:
            cells = subnets_module.compute_epoch_cells(subnet["n"], hyper.max_validators)
            due.append((subnet["last_epoch"] + hyper.tempo, netuid, cells))
            found[netuid] = (subnet, cells)
    budget = subnets_module.get_params(state).epoch_budget
    return [(netuid, *found[netuid]) for netuid in schedule_epochs(due, budget)]


def schedule_epochs(due: list[tuple[int, int, int]], budget: int) -> list[int]:
    """Of the due epochs ``(due block, netuid, cells)``, the netuids to run now: longest-due first (then the lower
    netuid) while their cells fit in ``budget``; the first always runs, and the order is never skipped ahead."""
    chosen: list[int] = []
    spent = 0
    for _, netuid, cells in sorted(due):
        if chosen and spent + cells > budget:
            break
        chosen.append(netuid)
        spent += cells
    return chosen


def epoch_input(state: Reader, netuid: int, subnet: dict[str, Any], height: int) -> EpochInput:
    hyper = get_hyperparams(subnet)
    size = subnet["n"]
    weights: dict[int, Any] = {}
    bonds: dict[int, Any] = {}
    for uid in range(size):
        row = get_weights(state, netuid, uid)
        if row is not None:
            weights[uid] = row
        bond = neurons.get_bonds(state, netuid, uid)
        if bond is not None:
            bonds[uid] = bond
    return EpochInput(
        block=height,
        stake=neurons.get_vector(state, netuid, "stake", size).tolist(),
        last_update=neurons.get_vector(state, netuid, "last_update", size).tolist(),
        registered_at=neurons.get_vector(state, netuid, "registered_at", size).tolist(),
        weights=weights, bonds=bonds, kappa=hyper.kappa, bonds_alpha=hyper.bonds_alpha,
        max_validators=hyper.max_validators, activity_cutoff=hyper.activity_cutoff)


def run_subnet_epoch(ctx: Context, netuid: int, subnet: dict[str, Any]) -> EpochOutput:
    state, height = ctx.state, ctx.block.height
    size = subnet["n"]
    result = run_epoch(epoch_input(state, netuid, subnet, height))
    paid = _distribute(state, netuid, subnet, result) if size else np.zeros(0, dtype=np.int64)
    vectors = {"active": [int(a) for a in result.active], "permit": [int(p) for p in result.permit],
               "consensus": result.consensus, "trust": result.trust, "incentive": result.incentive,
               "dividends": result.dividends}
    for name, values in vectors.items():
        neurons.set_vector(state, netuid, name, np.asarray(values, dtype=np.int64))
    neurons.set_vector(state, netuid, "emission", paid)
    for uid in range(size):
        neurons.set_bonds(state, netuid, uid, result.bonds.get(uid))
    subnet = neurons.require_subnet(state, netuid)  # _distribute may not change it, but read fresh
    subnet["last_epoch"] = height
    subnet["epoch"] += 1
    neurons.put_subnet(state, netuid, subnet)
    ctx.emit(EpochRun(netuid=netuid, epoch=subnet["epoch"], paid=int(paid.sum()),
             pending=neurons.get_pending(state, netuid)))
    return result


def _distribute(state: State, netuid: int, subnet: dict[str, Any], result: EpochOutput) -> np.ndarray:
    """Pay the pending emission; returns grains paid per UID (miner and validator parts)."""
    size = subnet["n"]
    paid = np.zeros(size, dtype=np.int64)
    pending = neurons.get_pending(state, netuid)
    params = get_params(state)
    owner_part = pending * params.owner_share_bps // BPS
    miner_part = pending * params.miner_share_bps // BPS
    validator_part = pending - owner_part - miner_part
    if sum(result.incentive) == 0:
        validator_part, miner_part = validator_part + miner_part, 0
    shares = result.dividends if sum(result.dividends) else result.stake_share
    if sum(shares) == 0:
        # No one to pay as validator: that part (and the miners', if they had no incentive) waits.
        carried = validator_part
        validator_part = 0
    else:
        carried = 0
    rows = dict(neurons.neurons(state, netuid))
    if owner_part:
        bank.release(state, NAME, subnet["owner"], owner_part)
    for uid, grains in enumerate(split_exactly(miner_part, result.incentive)):
        if grains:
            bank.release(state, NAME, rows[uid]["coldkey"], grains)
            paid[uid] += grains
    dividends = []
    for uid, grains in enumerate(split_exactly(validator_part, shares)):
        if grains:
            dividends.append((uid, rows[uid]["hotkey"], grains))
            paid[uid] += grains
    staking.pay_dividends(state, netuid, dividends, NAME)  # O(validators): stakers' rows are not touched
    neurons.set_pending(state, netuid, carried)
    return paid


# --- queries, genesis and invariants -----------------------------------------------------------------------


def query_info(state: Reader, parts: list[str], data: bytes) -> Any:
    expect_args(parts, 0, "/emission/info")
    params = get_params(state)
    minted = state.get_int(MINTED_KEY)
    return {"params": params_to_json(params), "minted": minted,
            "next_block_reward": compute_block_reward(params, state.height + 1, minted),
            "pending": {str(n): neurons.get_pending(state, n) for n in neurons.netuids(state)}}


RECORDS = (RecordKind(MINTED_KEY, 0, INT),)
GENESIS = ModuleGenesis("emission", Params, BOUNDS, PARAMS_KEY, RECORDS)


def validate_genesis(raw: Any) -> SectionState:
    section = GENESIS.validate(raw)
    params: Params = section.params
    if params.owner_share_bps + params.miner_share_bps > BPS:
        raise INVALID_GENESIS(f"emission.params: owner_share_bps ({params.owner_share_bps}) and miner_share_bps "
                              f"({params.miner_share_bps}) together exceed {BPS} basis points (all of an epoch's "
                              "emission); validators get what they leave")
    return section


def invariant_pending(state: Reader) -> str | None:
    pending = sum(neurons.get_pending(state, n) for n in neurons.netuids(state))
    held = bank.get_held(state, NAME)
    return None if pending == held else f"pending emission {pending} != held by emission {held}"


def invariant_cap(state: Reader) -> str | None:
    minted = state.get_int(MINTED_KEY)
    return None if minted <= get_params(state).cap else f"emission minted {minted}, above the cap"


MODULE = ModuleSpec(
    name=NAME,
    events=(EpochRun,),
    end_block=end_block,
    queries={"info": query_info, "params": GENESIS.query},
    validate_genesis=validate_genesis,
    init_genesis=GENESIS.init,
    export_genesis=GENESIS.export,
    invariants={"pending": invariant_pending, "cap": invariant_cap},
)
