"""Share pools of staking: dividends cost O(validators) and pay each staker what the old per-staker walk paid
(within the documented rounding, the total exact); dust spam is refused; the stakes query reads the index keyed
by the coldkey; closed pools (pruning, dissolving) are returned within a per-block budget, the supply exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridmint.chain import bank, codec, emission, fees, neurons, staking
from gridmint.chain.crypto import format_address, parse_address
from gridmint.chain.errors import ChainError, lookup
from gridmint.chain.module import BlockInfo, Context
from gridmint.chain.state import CommittedView, Reader, State
from gridmint.chain.subnets import MsgDissolveSubnet, MsgRegister
from gridmint.chain.yuma import split_exactly
from tests.chain.incentive_network import Network, build, hot
from tests.support.chain import FEE, MINT, balance, genesis, key

MIN_STAKE = staking.Params().min_stake


class CountingReader(Reader):
    """A view that counts every key read and every row a scan returns, by key prefix: the work of a piece of
    chain code, measured without a clock."""

    def __init__(self, inner: Reader) -> None:
        self.inner = inner
        self.gets: list[bytes] = []
        self.scanned: list[bytes] = []

    @property
    def height(self) -> int:
        return self.inner.height

    def get(self, key: bytes) -> bytes | None:
        self.gets.append(key)
        return self.inner.get(key)

    def scan(self, prefix: bytes, below: bytes | None = None, limit: int | None = None
             ) -> Iterator[tuple[bytes, bytes]]:
        for found, value in self.inner.scan(prefix, below, limit):
            self.scanned.append(found)
            yield found, value

    def touched(self, prefix: bytes) -> int:
        return sum(1 for key in (*self.gets, *self.scanned) if key.startswith(prefix))


def delegators(count: int) -> tuple[str, ...]:
    return tuple(f"delegator-{index}" for index in range(count))


def stake_all(net: Network, target: str, stakes: dict[str, int]) -> None:
    for name, grains in stakes.items():
        net.send(name, staking.MsgAddStake(1, key(hot(target)).address, grains))
    results = net.commit()
    assert all(result.code == 0 for name in stakes for result in results[name])


def view(net: Network) -> CommittedView:
    return CommittedView(net.app.store)


def block_context(net: Network, state: State) -> Context:
    return Context(state, BlockInfo(net.height + 1, net.time_ns + 10**9, b"", net.app.chain_id))


# --- dividends ---------------------------------------------------------------------------------------------


def test_dividends_pay_each_staker_what_the_per_staker_walk_paid(tmp_path: Path) -> None:
    names = delegators(9)
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), extra_accounts=names)
    v1_hot = key(hot("v1")).address
    amounts = [MIN_STAKE, MIN_STAKE + 1, 7 * MINT, 123_456_789, 50 * MINT + 3, 999 * MINT, 2 * MIN_STAKE + 17,
               31 * MINT, 5_000_001]
    own = staking.get_stake(view(net), 1, v1_hot, key("v1").address)  # compounded once already in build()
    stake_all(net, "v1", dict(zip(names, amounts, strict=True)))
    net.set_weights("v1", {"m1": 65_535})
    coldkeys = sorted([key("v1").address, *(key(name).address for name in names)])
    # The walk the share pool replaces: each epoch's compounded rest split by the largest remainder among the
    # stakers' integer stakes, in coldkey order, as pay_dividend did before.
    walked = {coldkey: staking.get_stake(view(net), 1, v1_hot, coldkey) for coldkey in coldkeys}
    added = dict(zip([key(n).address for n in names], amounts, strict=True)) | {key("v1").address: own}
    assert all(0 <= added[c] - walked[c] <= 1 for c in coldkeys)  # buying shares rounds down, by under a grain
    walked = dict(added)
    epochs = 8
    for _ in range(epochs):
        before = staking.hotkey_total(view(net), 1, v1_hot)
        net.until_epoch()
        rest = staking.hotkey_total(view(net), 1, v1_hot) - before
        assert rest > 0
        for coldkey, part in zip(coldkeys, split_exactly(rest, [walked[c] for c in coldkeys]), strict=True):
            walked[coldkey] += part
    pooled = {coldkey: staking.get_stake(view(net), 1, v1_hot, coldkey) for coldkey in coldkeys}
    total = staking.hotkey_total(view(net), 1, v1_hot)
    assert total == sum(walked.values())  # the pool holds exactly what the walk would have booked
    assert 0 <= total - sum(pooled.values()) < len(coldkeys)  # the floors' dust stays in the pool
    # Each staker within a grain of the walk per epoch and per purchase: both round a proportional split.
    assert all(abs(pooled[c] - walked[c]) <= epochs + 1 for c in coldkeys), \
        {format_address(c): pooled[c] - walked[c] for c in coldkeys}
    assert net.app.check_invariants() == []


def run_epoch_counted(net: Network) -> tuple[CountingReader, State]:
    counting = CountingReader(view(net))
    state = State(counting)
    emission.run_subnet_epoch(block_context(net, state), 1, neurons.require_subnet(state, 1))
    return counting, state


def test_the_epoch_reads_and_writes_the_same_whatever_the_number_of_stakers(tmp_path: Path) -> None:
    work = {}
    for count in (1, 60):
        names = delegators(count)
        (tmp_path / str(count)).mkdir()
        net = build(tmp_path / str(count), {"v1": 300 * MINT, "v2": 200 * MINT}, ("m1", "m2"),
                    extra_accounts=names)
        stake_all(net, "v1", dict.fromkeys(names, MIN_STAKE))
        net.set_weights("v1", {"m1": 65_535, "m2": 100})
        net.set_weights("v2", {"m1": 65_535})
        net.until_epoch()
        net.advance(3)  # emission accrues, so that the counted epoch pays dividends
        counting, state = run_epoch_counted(net)
        v1_hot = key(hot("v1")).address
        assert staking.hotkey_total(state, 1, v1_hot) > staking.hotkey_total(view(net), 1, v1_hot)  # it paid v1
        assert counting.touched(staking.POSITION_PREFIX) == 0 and counting.touched(staking.SLOT_PREFIX) == 0
        work[count] = (len(counting.gets), len(counting.scanned), sorted(state.writes))
    (gets_few, rows_few, writes_few), (gets_many, rows_many, writes_many) = work[1], work[60]
    assert (gets_few, rows_few, len(writes_few)) == (gets_many, rows_many, len(writes_many))
    assert writes_few == writes_many  # the very same keys: one pool row per validator, no staker's row


# --- spam and the minimum ------------------------------------------------------------------------------------


def test_a_stake_below_the_minimum_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), extra_accounts=("spammer",))
    before = list(view(net).scan(b"staking/"))
    held = bank.get_held(view(net), "staking")
    spam = [staking.MsgAddStake(1, key(hot("v1")).address, 1)] * 16  # sixteen 1-grain stakes in one transaction
    net.send("spammer", *spam)
    (result,) = net.commit()["spammer"]
    kind = lookup(result.codespace, result.code)
    assert kind is not None and kind.name == "stake_below_minimum" and "0.001 MINT" in result.log
    assert list(view(net).scan(b"staking/")) == before
    net.ok("spammer", staking.MsgAddStake(1, key(hot("v1")).address, MIN_STAKE))
    assert bank.get_held(view(net), "staking") == held + MIN_STAKE
    assert net.app.check_invariants() == []


def test_an_unstake_that_would_leave_dust_closes_the_position(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), extra_accounts=("alice",))
    v1_hot = key(hot("v1")).address
    net.ok("alice", staking.MsgAddStake(1, v1_hot, 5 * MIN_STAKE))
    worth = staking.get_stake(view(net), 1, v1_hot, key("alice").address)
    before = balance(net.app, "alice")
    net.ok("alice", staking.MsgRemoveStake(1, v1_hot, 2 * MIN_STAKE))  # leaves 3 × the minimum: partial
    assert staking.get_stake(view(net), 1, v1_hot, key("alice").address) >= worth - 2 * MIN_STAKE - 1
    left = staking.get_stake(view(net), 1, v1_hot, key("alice").address)
    net.ok("alice", staking.MsgRemoveStake(1, v1_hot, left - MIN_STAKE + 1))  # would leave a grain under it
    assert staking.get_stake(view(net), 1, v1_hot, key("alice").address) == 0
    assert balance(net.app, "alice") == before + 2 * MIN_STAKE + left - 2 * FEE  # fees
    assert codec.decode(net.app.query(f"/staking/stakes/{format_address(key('alice').address)}").value) == []
    assert net.app.check_invariants() == []


def test_the_last_staker_out_takes_the_dust(tmp_path: Path) -> None:
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), extra_accounts=("alice",))
    v1_hot = key(hot("v1")).address
    net.ok("alice", staking.MsgAddStake(1, v1_hot, 3 * MINT + 7))
    net.set_weights("v1", {"m1": 65_535})
    net.until_epoch()
    net.until_epoch()
    for name in ("alice", "v1"):
        worth = staking.get_stake(view(net), 1, v1_hot, key(name).address)
        net.ok(name, staking.MsgRemoveStake(1, v1_hot, worth))
    assert staking.live_pool(view(net), 1, v1_hot) is None and bank.get_held(view(net), "staking") == 0
    assert list(view(net).scan(b"staking/pool/")) == [] and list(view(net).scan(b"staking/position/")) == []
    assert net.app.check_invariants() == []


# --- the index ---------------------------------------------------------------------------------------------


def test_the_stakes_query_reads_the_coldkeys_index_not_the_table(tmp_path: Path) -> None:
    names = delegators(40)
    net = build(tmp_path, {"v1": 300 * MINT, "v2": 100 * MINT}, ("m1",), extra_accounts=names)
    stake_all(net, "v1", dict.fromkeys(names, 2 * MIN_STAKE))
    stake_all(net, "v2", {names[7]: 3 * MIN_STAKE})
    counting = CountingReader(view(net))
    found = staking.query_stakes(counting, [format_address(key(names[7]).address)], b"")
    assert {row["hotkey"]: row["amount"] for row in found} == {
        format_address(key(hot("v1")).address): staking.get_stake(view(net), 1, key(hot("v1")).address,
                                                                  key(names[7]).address),
        format_address(key(hot("v2")).address): staking.get_stake(view(net), 1, key(hot("v2")).address,
                                                                  key(names[7]).address)}
    assert len(counting.scanned) == 2  # its own two positions, not the 43 in the table
    assert len(counting.gets) == 2  # the two pools
    answer = codec.decode(net.app.query(f"/staking/hotkey/1/{format_address(key(hot('v1')).address)}").value)
    total = staking.hotkey_total(view(net), 1, key(hot("v1")).address)
    assert len(answer["stakers"]) == 41 and answer["total"] == total
    assert 0 <= total - sum(row["amount"] for row in answer["stakers"]) < 41  # the dust, under a grain each
    coldkeys = [parse_address(row["coldkey"]) for row in answer["stakers"]]
    assert coldkeys == sorted(coldkeys)  # in coldkey order, as before


# --- closed pools: pruning and dissolving --------------------------------------------------------------------


def test_a_pruned_hotkeys_stakers_are_returned_within_the_per_block_budget(tmp_path: Path) -> None:
    names = delegators(8)
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1", "m2"), extra_accounts=(*names, "newbie"), max_uids=3,
                sections={"staking": {"params": {"returns_per_block": 3}}})
    stake_all(net, "m1", {name: (index + 1) * MINT + index for index, name in enumerate(names)})
    net.set_weights("v1", {"m1": 1_000, "m2": 65_535})
    net.until_epoch()
    m1_hot = key(hot("m1")).address
    worth = {name: staking.get_stake(view(net), 1, m1_hot, key(name).address) for name in names}
    closed_stake = staking.hotkey_total(view(net), 1, m1_hot)
    balances = {name: balance(net.app, name) for name in names}
    net.ok("newbie", MsgRegister(1, key(hot("newbie")).address, 0))
    assert net.uid("newbie") == 1 and net.vector("stake")[1] == 0  # m1 was pruned; its stake left the UID
    left = []
    while closing := list(view(net).scan(staking.CLOSING_PREFIX)):
        (pool_key, _), = closing
        pool = staking._read_pool(view(net), int.from_bytes(pool_key[len(staking.CLOSING_PREFIX):], "big"))
        assert pool is not None and pool.hotkey == m1_hot
        left.append(pool.count)
        assert net.app.check_invariants() == []
        epochs = emission.select_epochs(view(net), neurons.netuids(view(net)), net.height + 1)
        epoch_units = sum(cells for _, _, cells in epochs) * fees.EPOCH_UNITS_PER_KILOCELL // 1_000
        # The block reserves the returns' work before any transaction, whatever the pool has left.
        assert fees.get_reserved_units(view(net), net.height + 1) == epoch_units + 3 * fees.STAKE_RETURN
        counting = CountingReader(view(net))
        staking.return_closed_pools(block_context(net, State(counting)))
        assert counting.touched(staking.POSITION_PREFIX) == min(3, pool.count)  # the budget, not the pool's size
        net.block()
    assert left == [8, 5, 2]  # 8 positions, 3 per block from the block after the pruning one (which reserved none)
    assert not staking.is_returning(view(net))
    back = {name: balance(net.app, name) - balances[name] for name in names}
    assert sum(back.values()) == closed_stake  # to the grain, dust included
    assert all(worth[name] <= back[name] <= worth[name] + len(names) for name in names)
    assert bank.get_held(view(net), "staking") == staking.hotkey_total(view(net), 1, key(hot("v1")).address)
    assert net.app.check_invariants() == []


def test_dissolving_returns_every_stake_and_empties_the_index(tmp_path: Path) -> None:
    names = delegators(12)
    net = build(tmp_path, {"v1": 300 * MINT, "v2": 200 * MINT}, ("m1",), extra_accounts=names)
    stake_all(net, "v1", {name: MINT + index for index, name in enumerate(names)})
    stake_all(net, "v2", {name: 2 * MINT for name in names[:5]})
    net.set_weights("v1", {"m1": 65_535})
    net.until_epoch()
    everyone = (*names, "v1", "v2")
    staked = {name: sum(row["amount"] for row in codec.decode(
        net.app.query(f"/staking/stakes/{format_address(key(name).address)}").value)) for name in everyone}
    held = bank.get_held(view(net), "staking")
    balances = {name: balance(net.app, name) for name in everyone}
    net.ok("owner", MsgDissolveSubnet(1))
    assert all(balance(net.app, name) == balances[name] for name in everyone[:-2])  # returned from the next block
    net.block()
    for name in everyone:
        gained = balance(net.app, name) - balances[name]
        assert staked[name] <= gained < staked[name] + len(everyone), name  # the last out of a pool: its dust
        assert codec.decode(net.app.query(f"/staking/stakes/{format_address(key(name).address)}").value) == []
    assert sum(balance(net.app, n) - balances[n] for n in everyone) == held
    assert [k for k, _ in view(net).scan(b"staking/")] == [staking.NEXT_POOL_KEY, staking.PARAMS_KEY]
    assert net.app.check_invariants() == []


# --- genesis -----------------------------------------------------------------------------------------------


def test_staking_genesis_takes_bounded_params_and_exports_them(tmp_path: Path) -> None:
    for bad in ({"params": {"min_stake": 0}}, {"params": {"returns_per_block": 0}}, {"params": {"speed": 1}},
                {"stakes": []}, [1]):
        try:
            genesis(staking=bad)
        except ChainError as error:
            assert error.kind.name == "invalid_genesis" and "staking" in error.message
        else:
            raise AssertionError(f"accepted {bad}")
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), sections={"staking": {"params": {"min_stake": 5 * MINT}}})
    exported = net.app.export_genesis("2026-01-01T00:00:00Z")["app_state"]["staking"]
    assert exported["params"] == {"min_stake": 5 * MINT, "returns_per_block": 1_024}
    assert sorted(exported["records"]) == ["staking/live/", "staking/next_pool", "staking/pool/",
                                           "staking/position/", "staking/slot/"]  # v1's pool, with its position
    assert codec.decode(net.app.query("/staking/params").value)["min_stake"] == 5 * MINT
    assert genesis(staking=None).modules["staking"].params == staking.Params()  # an empty section, as before


def test_a_hotkeys_stakers_are_answered_a_page_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many accounts stake to a hotkey, one answer reads one page of them."""
    monkeypatch.setattr(staking, "STAKERS_PER_PAGE", 10)
    names = delegators(40)
    net = build(tmp_path, {"v1": 300 * MINT}, ("m1",), extra_accounts=names)
    stake_all(net, "v1", dict.fromkeys(names, 2 * MIN_STAKE))
    hotkey = format_address(key(hot("v1")).address)
    pages = []
    for page in range(6):
        counting = CountingReader(view(net))
        answer = staking.query_hotkey(counting, ["1", hotkey], f"page={page}".encode())
        assert (answer["count"], answer["pages"], answer["page"]) == (41, 5, page)
        assert len(counting.gets) <= 2 * 10 + 4  # a slot and a position per staker, the pool and the take
        pages.append([row["coldkey"] for row in answer["stakers"]])
    assert [len(rows) for rows in pages] == [10, 10, 10, 10, 1, 0]
    everyone = [c for rows in pages for c in rows]
    assert len(set(everyone)) == 41
    refused = net.app.query(f"/staking/hotkey/1/{hotkey}", b"page=x")
    assert lookup(refused.codespace, refused.code) is not None and "page" in refused.log
