"""Work is paid for: the fee schedule per message, fee_too_low and block_full refusals that change nothing,
capped subnet shapes, epochs bounded per block yet never starved, and a subnet lock that decays all the way."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from gridmint.chain import authority, bank, commitments, credit, fees, market, neurons, staking, subnets, weights
from gridmint.chain.app import MESSAGE_TYPES, MODULES, BlockFill
from gridmint.chain.crypto import format_address
from gridmint.chain.emission import schedule_epochs
from gridmint.chain.errors import lookup
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.params import params_to_json
from gridmint.chain.state import BlockState, CommittedView
from gridmint.chain.subnets import compute_epoch_cells, get_lock_cost
from gridmint.chain.tx import Msg, TxBody
from tests.chain.incentive_network import build
from tests.support.chain import (
    CHAIN_ID,
    MIN_TX_FEE,
    MINT,
    Chain,
    Driver,
    genesis,
    key,
    make_app,
    required_fee,
    signed,
    snapshot,
)

A = key("alice").address
PK, SIG = key("alice").public_key, bytes(64)
# A settlement of 72 entries: 300 + 72 × 180 units, 13,560 with the envelope, and 9,091 bytes (the tests that fill
# blocks with it allow 16 kB transactions).
FILLER = credit.MsgSettle(1, [[key("c").address, key("m").public_key, 1, 1, 1, SIG]] * 72)
LARGE_TXS = {"max_tx_bytes": 16_384}
DEFAULT_SHAPE = params_to_json(subnets.Hyperparams())  # 256 UIDs, 64 validators, tempo 360
DEFAULT_EPOCHS = 33_024 * 600 * 7_200 // (360 * 1_000)  # a day of the default shape's epochs: 396,288 units

# Each message type with an example and its units under the default shape, worked out by hand from the schedule.
SCHEDULE: list[tuple[Msg, int]] = [
    (bank.MsgSend(A, MINT), 30),
    (authority.MsgPropose("add", key("x").public_key, 10, "newcomer"), 100 + 8),
    (authority.MsgVote(1), 100),
    (subnets.MsgCreateSubnet("text-generation", "chat"), 500 + 19 + DEFAULT_EPOCHS),
    (subnets.MsgSetHyperparam(1, "kappa", 100), 100),
    (subnets.MsgSetHyperparam(1, "tempo", 720), 100 + DEFAULT_EPOCHS // 2),  # half the epochs of tempo 360
    (subnets.MsgSetHyperparam(1, "max_uids", 4_096), 100 + (64 * 4_096 + 4_096 + 16_384) * 12),  # 0.6 unit/cell × 20
    (subnets.MsgDissolveSubnet(1), 500 + 100 * 512),  # and its block's clearing of commitments
    # ten vectors and a prune scan per UID it may hold, and the commitments of the hotkey it may prune
    (subnets.MsgRegister(1, A, 0), 550 + 82 * 256 + 100 * 64),
    (subnets.MsgAnnounceEndpoint(1, "http://a.b/", ["m1", "m2"], 5, 1), 200 + 11 + 4),
    (staking.MsgAddStake(1, A, MINT), 300 + 8 * 256),
    (staking.MsgRemoveStake(1, A, MINT), 200 + 8 * 256),
    (staking.MsgSetTake(A, 100), 50),
    (weights.MsgSetWeights(1, [0, 1, 2], [1, 2, 3]), 200 + 6 * 3 + 9 * 256),
    (weights.MsgCommitWeights(1, b"\x01" * 32), 200 + 256),
    (weights.MsgRevealWeights(1, [0, 1], [1, 2], b"\x02" * 32), 200 + 6 * 2 + 9 * 256),
    (market.MsgRegisterProvider("http://p.q", "h100", 1, 80, 1000, 1024, 1024, "eu", ["fast"], MINT),
     300 + 10 + 4 + 2 + 4),
    (market.MsgCreateDeployment(1000, 1024, 1, ["h100", "a100"], 40, MINT, b"\x03" * 32, 2 * MINT), 400 + 8),
    (market.MsgBid(1, MINT), 400),
    (market.MsgAcceptBid(1, A), 500),
    (market.MsgCloseLease(1, 0), 300),
    (market.MsgWithdraw(1), 200),
    (market.MsgTopUp(1, MINT), 200),
    (market.MsgCloseDeployment(1), 300),
    (credit.MsgRegisterGateway("https://gw.example", 100, MINT), 300 + 18),
    (credit.MsgOpenCredit(A, MINT, 100, 1_000, 100, 0, 0), 200),
    (credit.MsgTopUpCredit(A, MINT, 0), 200),
    (credit.MsgCloseCredit(A), 100),
    # A settlement entry: 100 (lookup, line, payment) + 20 (its paid record) + 60 (one ed25519 verification).
    (credit.MsgSettle(7, [[A, PK, 5, 5, 1, SIG], [A, PK, 6, 6, 2, SIG]]), 300 + 2 * 180),
    (credit.MsgClaim(A, PK, [[A, PK, 5, 5, 1, SIG, SIG]]), 300 + 240),  # two verifications per entry
    (credit.MsgReclaimCredit(A), 200),
    (commitments.MsgCommit(1, b"\x04" * 32, b"root"), 200 + 4),
]


def units_of(*messages: Msg, memo: str = "", shape: dict[str, int] | None = None) -> fees.TxCost:
    return fees.compute_tx_cost(bank.Params(), messages, memo, lambda netuid: shape or DEFAULT_SHAPE,
                                lambda: DEFAULT_SHAPE)


def test_every_message_type_has_a_price() -> None:
    assert sorted(message.TYPE for message in fees.SCHEDULE) == sorted(MESSAGE_TYPES)
    assert sorted({type(message).TYPE for message, _ in SCHEDULE}) == sorted(MESSAGE_TYPES)


@pytest.mark.parametrize(("message", "units"), SCHEDULE, ids=lambda v: getattr(v, "TYPE", str(v)))
def test_the_schedule(message: Msg, units: int) -> None:
    cost = units_of(message)
    assert cost.units == units
    assert cost.fee == MIN_TX_FEE + 100 * units  # default bank params: 100 grains a unit


def test_a_transaction_pays_the_sum_of_its_messages_and_its_memo() -> None:
    chosen = [(message, units) for message, units in SCHEDULE if not isinstance(message, subnets.MsgSetHyperparam)][:16]
    assert units_of(*[m for m, _ in chosen], memo="hello").units == sum(units for _, units in chosen) + 5


def test_work_grows_with_the_subnet_and_the_weights() -> None:
    big = {**DEFAULT_SHAPE, "max_uids": 4_096}
    assert units_of(subnets.MsgRegister(1, A, 0), shape=big).units == 550 + 82 * 4_096 + 100 * 64
    everyone = list(range(4_096))
    assert units_of(weights.MsgSetWeights(1, everyone, [1] * 4_096), shape=big).units == 200 + 6 * 4_096 + 9 * 4_096


def test_the_commitments_parameters_are_read_only_for_a_message_that_deletes_commitments() -> None:
    reads: list[str] = []

    def deleting() -> commitments.Params:
        reads.append("commitments")
        return commitments.Params(retention_epochs=7, cleared_per_block=3)

    def cost_of(*messages: Msg) -> int:
        return fees.compute_tx_cost(bank.Params(), messages, "", lambda netuid: DEFAULT_SHAPE, lambda: DEFAULT_SHAPE,
                                    deleting).units

    assert cost_of(bank.MsgSend(A, 1), weights.MsgSetWeights(1, [0], [1])) == 30 + 200 + 6 + 9 * 256
    assert reads == []  # a transfer or weights: priced without reading them
    assert cost_of(subnets.MsgRegister(1, A, 0), subnets.MsgDissolveSubnet(1)) == (
        550 + 82 * 256 + 100 * 7) + (500 + 100 * 3)
    assert reads == ["commitments"]  # read once for the transaction, and used


def test_shape_changes_are_priced_in_order_and_on_the_resulting_shape() -> None:
    # max_uids then max_validators in one transaction: the second is priced on 4,096 UIDs and 256 validators,
    # so splitting a costly shape into steps saves nothing.
    both = units_of(subnets.MsgSetHyperparam(1, "max_uids", 4_096),
                    subnets.MsgSetHyperparam(1, "max_validators", 256)).units
    full = compute_epoch_cells(4_096, 256) * 12
    assert both == 100 + (64 * 4_096 + 4_096 + 16_384) * 12 + 100 + full
    # A value out of bounds changes no shape (the message will be refused): only the base is due beyond it.
    assert units_of(subnets.MsgSetHyperparam(1, "tempo", 0)).units == 100 + DEFAULT_EPOCHS
    # Prepaid epoch work is paid for but does not fill the block: the block counts the envelope and the rest.
    cost = units_of(subnets.MsgCreateSubnet("text-generation", "chat"))
    assert cost.block_units == fees.ENVELOPE_UNITS + 500 + 19


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    chain = Chain(make_app(tmp_path))
    chain.block()
    return chain


def test_a_fee_below_the_requirement_is_refused_with_the_amount_and_changes_nothing(chain: Chain) -> None:
    message = bank.MsgSend(key("bob").address, MINT)
    needed = required_fee(chain.app, message, memo="hi")
    assert needed == MIN_TX_FEE + 100 * (30 + 2)
    before = snapshot(chain.app)
    raw = signed(key("alice"), 1, message, fee=needed - 1, memo="hi")
    checked = chain.app.check_tx(raw)
    assert lookup(checked.codespace, checked.code).name == "fee_too_low"  # type: ignore[union-attr]
    assert f"({needed} grains)" in checked.log
    (delivered,) = chain.block(raw)
    assert (delivered.codespace, delivered.code) == ("tx", 9) and f"({needed} grains)" in delivered.log
    after = snapshot(chain.app)
    assert after[2] == before[2] and CommittedView(chain.app.store).get_int(b"tx/nonce/" + A) == 0
    (paid,) = chain.block(signed(key("alice"), 1, message, fee=needed, memo="hi"))
    assert paid.ok and snapshot(chain.app)[2]["alice"] == before[2]["alice"] - MINT - needed


def test_a_block_takes_at_most_max_block_units_and_a_refused_transaction_keeps_its_nonce(tmp_path: Path) -> None:
    accounts = tuple(f"user{i}" for i in range(9))
    limits = {"params": {"min_tx_fee": MIN_TX_FEE, "max_block_units": 100_000}, "balances": [
        {"address": bank_address(name), "amount": 1_000 * MINT} for name in accounts]}
    chain = Chain(make_app(tmp_path, genesis(accounts=(), bank=limits, tx=LARGE_TXS)))
    chain.block()
    # Settlements of 13,560 units each with the envelope, so seven fit in 100,000 and an eighth not.
    message = FILLER
    fee = required_fee(chain.app, message)
    raws = [signed(key(name), 1, message, fee=fee) for name in accounts[:8]]
    results = chain.block(*raws)
    names = [lookup(r.codespace, r.code).name for r in results]  # type: ignore[union-attr]
    assert names[:7] == ["not_gateway"] * 7  # they ran (and failed on their own terms, paying the fee)
    assert names[7] == "block_full" and "send it again" in results[7].log
    view = CommittedView(chain.app.store)
    assert view.get_int(b"tx/nonce/" + key(accounts[7]).address) == 0
    assert bank.get_balance(view, key(accounts[7]).address) == 1_000 * MINT
    # A proposer asks the app what fits, and leaves the eighth in its mempool for the next block.
    assert chain.app.fitting([*raws, b"not a transaction"], chain.height + 1).txs == raws[:7]
    (again,) = chain.block(raws[7])
    assert lookup(again.codespace, again.code).name == "not_gateway"  # type: ignore[union-attr]
    # A transaction bigger than a whole block never enters the mempool: five registrations on a 256-UID subnet.
    registrations = [subnets.MsgRegister(9, key(f"hot{i}").address, 0) for i in range(5)]
    huge = signed(key(accounts[8]), 1, *registrations, fee=required_fee(chain.app, *registrations))
    app_hash = chain.app.store.app_hash
    refused = chain.app.check_tx(huge)
    assert lookup(refused.codespace, refused.code).name == "block_full"  # type: ignore[union-attr]
    assert "split it" in refused.log and chain.app.store.app_hash == app_hash


def bank_address(name: str) -> str:
    from gridmint.chain.crypto import format_address

    return format_address(key(name).address)


@pytest.mark.parametrize(("param", "value", "code"), [
    ("max_uids", 4_097, "param_out_of_bounds"),
    ("max_validators", 257, "param_out_of_bounds"),
    ("tempo", 1, "param_out_of_bounds"),
])
def test_costly_shapes_are_refused_with_a_code_and_change_nothing(tmp_path: Path, param: str, value: int,
                                                                  code: str) -> None:
    net = build(tmp_path, {"v1": 100 * MINT}, ("m1",))
    before = net.subnet()
    net.send("owner", subnets.MsgSetHyperparam(net.netuid, param, value))
    (result,) = net.commit()["owner"]
    assert lookup(result.codespace, result.code).name == code, result.log  # type: ignore[union-attr]
    assert net.subnet()["params"] == before["params"]


def test_the_largest_shape_is_allowed_at_a_tempo_that_fits_its_share(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 100 * MINT}, ("m1",))
    cells = compute_epoch_cells(4_096, 256)
    shortest = -(-cells * 8 // subnets.Params().epoch_budget)  # the test genesis allows 8 subnets
    net.ok("owner", subnets.MsgSetHyperparam(net.netuid, "tempo", shortest))
    net.ok("owner", subnets.MsgSetHyperparam(net.netuid, "max_uids", 4_096))
    net.ok("owner", subnets.MsgSetHyperparam(net.netuid, "max_validators", 256))
    before = net.subnet()["params"]
    net.send("owner", subnets.MsgSetHyperparam(net.netuid, "tempo", shortest - 1))
    (result,) = net.commit()["owner"]
    assert lookup(result.codespace, result.code).name == "epoch_too_costly"  # type: ignore[union-attr]
    assert f"tempo of at least {shortest}" in result.log and net.subnet()["params"] == before


def test_genesis_refuses_a_default_tempo_that_overruns_the_epoch_budget() -> None:
    from gridmint.chain.errors import ChainError

    with pytest.raises(ChainError, match="default_tempo"):
        genesis(subnets={"params": {"max_subnets": 1_024, "default_tempo": 20}})
    genesis(subnets={"params": {"max_subnets": 1_024, "default_tempo": 40}})


def simulate(subnets_: list[tuple[int, int]], blocks: int, budget: int) -> tuple[list[int], dict[int, list[int]]]:
    """end_block's scheduling over ``(tempo, cells)`` subnets created at block 0: cells run per block, and each
    subnet's epoch blocks."""
    last = {netuid: 0 for netuid in range(1, len(subnets_) + 1)}
    ran: dict[int, list[int]] = {netuid: [] for netuid in last}
    per_block = []
    for height in range(1, blocks + 1):
        due = [(last[n] + tempo, n, cells) for n, (tempo, cells) in enumerate(subnets_, start=1)
               if height - last[n] >= tempo]
        chosen = schedule_epochs(due, budget)
        per_block.append(sum(subnets_[n - 1][1] for n in chosen))
        for netuid in chosen:
            last[netuid] = height
            ran[netuid].append(height)
    return per_block, ran


@pytest.mark.parametrize("seed", range(20))
def test_epochs_per_block_stay_in_the_budget_and_none_waits_more_than_the_number_of_subnets(seed: int) -> None:
    rng = random.Random(seed)
    budget = subnets.Params().epoch_budget
    count = rng.choice((3, 20, 128))
    worst = compute_epoch_cells(4_096, 256)
    shapes = [(rng.choice((2, 5, 10, 50, 130, 360)), rng.choice((compute_epoch_cells(0, 64), 33_024, worst)))
              for _ in range(count)]
    per_block, ran = simulate(shapes, 1_500, budget)
    assert max(per_block) <= budget  # a worst-case epoch fits the budget by the bounds, so it is never exceeded
    for netuid, heights in ran.items():
        tempo = shapes[netuid - 1][0]
        gaps = [b - a for a, b in zip([0, *heights], heights, strict=False)]
        assert heights and max(gaps) <= tempo + count - 1, (netuid, tempo, max(gaps))


def test_a_transaction_too_large_for_the_room_left_holds_back_no_one_else(tmp_path: Path) -> None:
    """A proposer passes over a transaction that does not fit (and the later ones of its signer, whose nonces follow
    it) and keeps filling the block with the rest; it used to stop there, so one large transaction at the head of
    the mempool kept every transaction behind it out of every block where epochs left less room."""
    fillers = tuple(f"filler{i}" for i in range(7))
    accounts = (*fillers, "big", "small")
    limits = {"params": {"min_tx_fee": MIN_TX_FEE, "max_block_units": 100_000}, "balances": [
        {"address": bank_address(name), "amount": 1_000 * MINT} for name in accounts]}
    chain = Chain(make_app(tmp_path, genesis(accounts=(), bank=limits, tx=LARGE_TXS)))
    chain.block()
    settle = FILLER  # 13,560 units with the envelope
    fee = required_fee(chain.app, settle)
    filled = [signed(key(name), 1, settle, fee=fee) for name in fillers]  # 94,920 units: 5,080 left
    big, big_next = (signed(key("big"), nonce, settle, fee=fee) for nonce in (1, 2))
    small = signed(key("small"), 1, bank.MsgSend(key("big").address, 1))  # 330 units: fits
    assert chain.app.fitting([*filled, big, small, big_next], chain.height + 1) == BlockFill([*filled, small], True)
    assert chain.app.fitting([big, big_next, small], chain.height + 1) == BlockFill([big, big_next, small], False)
    # A block counts as full, so that the next may follow at once, only when half its room is taken: one large
    # transaction waiting behind one small one does not make blocks come faster.
    # (Bodies straight into the selection: a transaction this large would not pass the size limit to get there.)
    def body(name: str, *messages: Msg) -> TxBody:
        return TxBody(CHAIN_ID, key(name).public_key, 1, 0, messages)

    huge = body("big", *[settle] * 7)  # 93,120 units
    state = BlockState(chain.app.store)
    assert fees.select_fitting(state, [body("filler0", settle), huge], chain.height + 1) == fees.Fitting([0], False)
    four = [body(name, settle) for name in fillers[:4]]  # 54,240 units
    assert fees.select_fitting(state, [*four, huge], chain.height + 1) == fees.Fitting([0, 1, 2, 3], True)


def test_a_proposer_prices_a_backlog_only_until_no_transaction_could_fit(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No transaction counts less than its envelope, so once less than that is left, the rest of a backlog (the
    devnode reaps up to 10,000) waits unpriced: the same selection, for the price of what fits."""
    limits = {"params": {"min_tx_fee": MIN_TX_FEE, "max_block_units": 100_000}}
    chain = Chain(make_app(tmp_path, genesis(accounts=(), bank=limits, tx=LARGE_TXS)))
    chain.block()
    fillers = [TxBody(CHAIN_ID, key(f"filler{i}").public_key, 1, 0, (FILLER,)) for i in range(7)]  # 94,920 units
    transfers = [TxBody(CHAIN_ID, key(f"sender{i}").public_key, 1, 0, (bank.MsgSend(key("x").address, 1),))
                 for i in range(100)]  # 330 units each: 15 fit in the 5,080 left, leaving 130
    priced: list[TxBody] = []
    price = fees.get_tx_cost

    def counting(state: Any, body: TxBody, params: Any = None) -> fees.TxCost:
        priced.append(body)
        return price(state, body, params)

    monkeypatch.setattr(fees, "get_tx_cost", counting)
    selection = fees.select_fitting(BlockState(chain.app.store), [*fillers, *transfers], chain.height + 1)
    assert selection == fees.Fitting(list(range(7 + 15)), True)
    assert len(priced) == 7 + 15



def test_subnets_all_due_in_one_block_are_spread_over_the_next_ones(tmp_path: Path) -> None:
    """On the real app: 80 empty subnets created in one block fall due together; a block runs at most
    epoch_budget / EPOCH_OVERHEAD_CELLS of their epochs and the rest run in the next block."""
    tempo = 20
    params = {"min_lock": 0, "max_subnets": 80, "default_tempo": tempo}
    limits = {"params": {"min_tx_fee": MIN_TX_FEE, "max_block_units": 660_000},
              "balances": [{"address": bank_address("owner"), "amount": 10_000 * MINT}]}
    net = Driver(make_app(tmp_path, genesis(accounts=(), subnets={"params": params}, bank=limits, tx=LARGE_TXS)))
    for _ in range(5):
        net.send("owner", *[subnets.MsgCreateSubnet("text-generation", "s")] * 16)
    net.commit()
    created = net.height
    view = CommittedView(net.app.store)
    assert len(neurons.netuids(view)) == 80
    net.advance(tempo - 1)
    per_block = subnets.Params().epoch_budget // subnets.EPOCH_OVERHEAD_CELLS
    reserved = fees.get_reserved_units(CommittedView(net.app.store), created + tempo)
    assert reserved == per_block * subnets.EPOCH_OVERHEAD_CELLS * fees.EPOCH_UNITS_PER_KILOCELL // 1_000
    # The due epochs are reserved before transactions: two settlements of 13,560 units do not both fit in the
    # 660,000 - 638,976 units left (in the next block they would).
    settle = FILLER
    epochs_at: dict[int, int] = {}
    for index in range(3):
        before = {n: neurons.require_subnet(CommittedView(net.app.store), n)["epoch"] for n in range(1, 81)}
        if index == 0:
            net.send("owner", settle)
            net.send("owner", settle)
            first, second = net.commit()["owner"]
            assert lookup(first.codespace, first.code).name == "not_gateway"  # type: ignore[union-attr]
            assert lookup(second.codespace, second.code).name == "block_full"  # type: ignore[union-attr]
        else:
            net.block()
        view = CommittedView(net.app.store)
        ran = [n for n in range(1, 81) if neurons.require_subnet(view, n)["epoch"] > before[n]]
        epochs_at[net.height] = len(ran)
    assert per_block == 65
    assert epochs_at == {created + tempo: per_block, created + tempo + 1: 80 - per_block, created + tempo + 2: 0}


def test_six_create_and_dissolve_pairs_raise_the_lock_only_until_it_decays_back_to_the_minimum(
        tmp_path: Path) -> None:
    period = 50
    net = Driver(make_app(tmp_path, genesis(accounts=("owner",), balance=100_000 * MINT, subnets={
        "params": {"lock_decay_period": period, "default_tempo": 360}})))
    net.block()
    attack: list[Msg] = []
    for netuid in range(1, 7):
        attack += [subnets.MsgCreateSubnet("text-generation", "spam"), subnets.MsgDissolveSubnet(netuid)]
    net.ok("owner", *attack)
    attacked = net.height
    min_lock = 1_000 * MINT
    view = CommittedView(net.app.store)
    assert get_lock_cost(view, attacked) == 64_000 * MINT  # twice the sixth lock of 32,000 MINT
    assert neurons.netuids(view) == [] and bank.get_balance(view, key("owner").address) > 99_000 * MINT
    costs: list[Any] = []
    for elapsed in (period // 2, period, 3 * period // 2, 2 * period, 10 * period):
        costs.append(get_lock_cost(view, attacked + elapsed))
    assert costs == [48_000 * MINT, 32_000 * MINT, 16_000 * MINT, min_lock, min_lock]
    net.advance(2 * period)
    view = CommittedView(net.app.store)
    assert get_lock_cost(view, net.height + 1) == min_lock
    before = bank.get_balance(view, key("owner").address)
    net.ok("owner", subnets.MsgCreateSubnet("text-generation", "honest"))
    view = CommittedView(net.app.store)
    assert neurons.require_subnet(view, 7)["lock"] == min_lock
    assert before - bank.get_balance(view, key("owner").address) > min_lock  # the lock and the fee


def test_a_max_uids_raise_takes_effect_at_the_end_of_its_block(tmp_path: Path) -> None:
    """The proposer priced the block's transactions on committed state; registrations after a raise in the same
    block would do work for UIDs it did not count (and fail with block_full, unpaid). So a raise holds from the end
    of the block that set it: in that block the subnet still holds what it held, and every price agrees."""
    miners = tuple(f"miner{i}" for i in range(6))
    net = Driver(make_app(tmp_path, genesis(accounts=("owner", *miners), balance=10_000 * MINT,
                                            subnets={"params": {"min_lock": 0, "default_tempo": 100}})))
    net.ok("owner", subnets.MsgCreateSubnet("text-generation", "s"))
    net.ok("owner", subnets.MsgSetHyperparam(1, "max_uids", 1), subnets.MsgSetHyperparam(1, "immunity_period", 1_000))
    net.send("owner", subnets.MsgSetHyperparam(1, "max_uids", 64))
    for name in miners:
        net.send(name, subnets.MsgRegister(1, key(name).address, 0))
    raws = [raw for _, raw in net.queued]
    assert net.app.fitting(raws, net.height + 1).txs == raws  # the proposer's prices...
    results = net.commit()
    outcomes = [lookup(r.codespace, r.code).name if r.code else "ok" for n in miners for r in results[n]]  # type: ignore[union-attr]
    assert outcomes == ["ok"] + ["subnet_full"] * 5  # ...are the block's: nothing fails for want of room
    view = CommittedView(net.app.store)
    assert neurons.require_subnet(view, 1)["params"]["max_uids"] == 64  # in force from the next block
    for name in miners[1:]:
        net.send(name, subnets.MsgRegister(1, key(name).address, 0))
    assert [r.log for rs in net.commit().values() for r in rs if r.code] == []
    assert neurons.require_subnet(CommittedView(net.app.store), 1)["n"] == 6


def test_the_epoch_rate_rule_counts_a_raise_still_pending_in_the_block(tmp_path: Path) -> None:
    """A max_uids raise waits for the end of its block; a tempo or max_validators set after it in the same block
    is checked against the shape the subnet will have, or the rate rule could be stepped around. (With 8 subnets,
    256 UIDs at tempo 2 would pass the rule; 4,096 would not.)"""
    net = Driver(make_app(tmp_path, genesis(accounts=("owner",), balance=10_000 * MINT,
                                            subnets={"params": {"min_lock": 0, "default_tempo": 100,
                                                                   "max_subnets": 8}})))
    net.ok("owner", subnets.MsgCreateSubnet("text-generation", "s"))
    before = neurons.require_subnet(CommittedView(net.app.store), 1)["params"]
    net.send("owner", subnets.MsgSetHyperparam(1, "max_uids", subnets.MAX_UIDS_CAP),
             subnets.MsgSetHyperparam(1, "max_validators", subnets.MAX_VALIDATORS_CAP),
             subnets.MsgSetHyperparam(1, "tempo", 2))
    (result,) = net.commit()["owner"]
    assert lookup(result.codespace, result.code) == subnets.EPOCH_TOO_COSTLY
    assert neurons.require_subnet(CommittedView(net.app.store), 1)["params"] == before
    # the raise alone, one transaction...
    net.send("owner", subnets.MsgSetHyperparam(1, "max_uids", subnets.MAX_UIDS_CAP))
    net.send("owner", subnets.MsgSetHyperparam(1, "max_validators", subnets.MAX_VALIDATORS_CAP),
             subnets.MsgSetHyperparam(1, "tempo", 2))  # ...and the rest in the next, same block
    results = net.commit()["owner"]
    assert results[0].code == 0 and lookup(results[1].codespace, results[1].code) == subnets.EPOCH_TOO_COSTLY
    assert neurons.require_subnet(CommittedView(net.app.store), 1)["params"]["tempo"] == before["tempo"]


# --- commitment deletions count against the block (s27-red) ------------------------------------------------

# The least a commitment's deletion has taken on the reference machine (two keys, the digest, the commit), in µs:
# a block's counted units must cover at least this much per commitment it deletes.
LEAST_DELETION_US = 50


def loaded_subnet(tmp_path: Path, retention: int, uids: int, cleared_per_block: int = 512) -> Driver:
    """Subnet 1, full, every UID prunable at once, each held by a hotkey with ``retention`` commitments on it: the
    chain is built, exported, given the commitments (a genesis may carry them for registered hotkeys) and
    started again from the export."""
    loaded = [key(f"loaded-{i}") for i in range(uids)]
    (tmp_path / "built").mkdir()
    (tmp_path / "loaded").mkdir()
    net = Driver(make_app(tmp_path / "built", genesis(balance=100_000 * MINT)))
    net.ok("alice", subnets.MsgCreateSubnet("text", "loaded"))
    for param, value in (("max_uids", uids), ("immunity_period", 0), ("burn_initial", 0), ("burn_min", 0)):
        net.ok("alice", subnets.MsgSetHyperparam(1, param, value))
    for hotkey in loaded:
        net.send("alice", subnets.MsgRegister(1, hotkey.address, 0))
    net.commit()
    document = net.app.export_genesis("2026-01-01T00:00:00Z")
    params = {"retention_epochs": retention, "cleared_per_block": cleared_per_block}
    document["app_state"]["commitments"] = {"params": params, "commitments": [
        {"netuid": 1, "hotkey": format_address(k.address), "epoch": epoch, "hash": "11" * 32, "data": "",
         "block": epoch} for k in loaded for epoch in range(1, retention + 1)]}
    restarted = Driver(make_app(tmp_path / "loaded", validate_genesis(document, MODULES)))
    restarted.height = int(document["initial_height"]) - 1  # the exported chain goes on from there
    restarted.block()  # genesis is committed with the first block
    return restarted


def test_registrations_that_prune_hotkeys_full_of_commitments_cannot_overrun_the_block(tmp_path: Path) -> None:
    """The attack: hotkeys each keep ``retention_epochs`` (the bound, 1,024) commitments, and a block is filled
    with registrations that prune them. Each deletion was prepaid by its commitment's fee, but the block that does
    them must count them: at most max_block_units / (1,024 × 50 µs) such registrations fit a block."""
    retention = 1_024
    net = loaded_subnet(tmp_path, retention, uids=2)
    view = CommittedView(net.app.store)
    assert sum(1 for _ in view.scan(commitments.COMMIT_PREFIX)) == 2 * retention
    registrations = [TxBody(CHAIN_ID, key(f"fresh-{i}").public_key, 1, 0,
                            (subnets.MsgRegister(1, key(f"fresh-hot-{i}").address, 0),), "") for i in range(200)]
    fitting = fees.select_fitting(BlockState(net.app.store), registrations, net.height + 1)
    max_block_units = bank.get_params(view).max_block_units
    assert len(fitting.positions) * retention * LEAST_DELETION_US <= max_block_units
    # Two of them run: each prunes one loaded hotkey and deletes its commitments, and counted at least that work.
    counted = sum(fees.get_tx_cost(view, body).block_units for body in registrations[:2])
    net.send("bob", subnets.MsgRegister(1, key("fresh-hot-0").address, 0))
    net.send("bob", subnets.MsgRegister(1, key("fresh-hot-1").address, 0))
    assert all(result.code == 0 for result in net.commit()["bob"])
    assert list(CommittedView(net.app.store).scan(commitments.COMMIT_PREFIX)) == []
    assert counted >= 2 * retention * LEAST_DELETION_US
    assert net.app.check_invariants() == []


def test_a_dissolved_subnets_clearing_is_reserved_in_every_block_until_it_is_done(tmp_path: Path) -> None:
    """end_block deletes up to cleared_per_block (bound 1,024) of dissolved subnets' commitments a block: a
    dissolve counts its own block's share, and each later block reserves it before any transaction, until the
    queue is empty."""
    net = loaded_subnet(tmp_path, 5, uids=1, cleared_per_block=2)
    view = CommittedView(net.app.store)
    assert fees.get_reserved_units(view, net.height + 1) == 0  # nothing queued: nothing reserved
    dissolve = TxBody(CHAIN_ID, PK, 1, 0, (subnets.MsgDissolveSubnet(1),), "")
    assert fees.get_tx_cost(view, dissolve).block_units >= 2 * LEAST_DELETION_US
    net.ok("alice", subnets.MsgDissolveSubnet(1))  # its end_block deletes two of the five
    reserved = []
    while True:
        reserved.append(fees.get_reserved_units(CommittedView(net.app.store), net.height + 1))
        if not list(CommittedView(net.app.store).scan(commitments.DISSOLVED_PREFIX)):
            break
        net.block()
    assert reserved == [2 * fees.COMMITMENT_DELETION] * 2 + [0]  # three left, two a block
    assert list(CommittedView(net.app.store).scan(commitments.COMMIT_PREFIX)) == []
    assert net.app.check_invariants() == []


@pytest.mark.parametrize("message", [subnets.MsgRegister(1, A, 0), subnets.MsgDissolveSubnet(1)],
                         ids=lambda m: m.TYPE)
def test_no_transaction_takes_more_of_a_block_than_its_fee_pays_for(tmp_path: Path, message: Msg) -> None:
    """Block units a sender does not pay for would let anyone fill blocks (and make a devnode produce them back
    to back) with transactions that fail cheaply, say a registration of a hotkey already registered or a stranger's
    dissolve: the deletions counted in a block are priced in the fee too, at the largest commitments bounds."""
    net = loaded_subnet(tmp_path, 1_024, uids=1, cleared_per_block=1_024)
    cost = fees.get_tx_cost(CommittedView(net.app.store), TxBody(CHAIN_ID, PK, 1, 0, (message,), ""))
    assert cost.block_units - fees.ENVELOPE_UNITS <= cost.units
    assert cost.units >= LEAST_DELETION_US * 1_024
