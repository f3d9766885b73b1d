"""The application, in the shape of ABCI 2 (CometBFT v0.38): ``info``, ``init_chain``, ``check_tx``, ``finalize_block``,
``commit`` and ``query``. The devnode calls it directly; under CometBFT an ABCI server calls the same methods.

A transaction is processed in two stages. First its envelope: chain id, nonce (exactly the account's last nonce
+ 1), fee at least what its messages require (chain/fees.py) and covered by the balance, and room for their work
in the block. A transaction that fails here is invalid and changes nothing. Then its messages, atomically: if any
fails, the block keeps only the fee (burned) and the nonce bump. ``check_tx`` runs both stages against a scratch
copy of the state that tracks what the mempool already holds, and admits a transaction only if both succeed.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gridmint.chain import authority, bank, codec, credit, emission, escrow, fees, market, staking, subnets, weights
from gridmint.chain.crypto import format_address, parse_address
from gridmint.chain.errors import (
    BAD_BLOCK,
    BAD_QUERY,
    NONCE_FUTURE,
    NONCE_REPLAYED,
    UNKNOWN_QUERY,
    WRONG_CHAIN_ID,
    ChainError,
)
from gridmint.chain.genesis import Genesis, TxParams
from gridmint.chain.lthash import checksum
from gridmint.chain.module import BlockInfo, Context, Event, ModuleSpec, ValidatorUpdate
from gridmint.chain.params import params_to_json
from gridmint.chain.state import BlockState, CommittedView, Reader, State, TxState
from gridmint.chain.store import Store
from gridmint.chain.tx import SignedTx, TxBody, decode_tx

APP_NAME = "gridmint"
APP_VERSION = 1
# Order matters only for block hooks: emission's end_block runs after every message of the block.
MODULES: tuple[ModuleSpec, ...] = (bank.MODULE, authority.MODULE, subnets.MODULE, staking.MODULE, weights.MODULE,
                                   emission.MODULE, market.MODULE, escrow.MODULE, credit.MODULE)
VERIFIED_CACHE_SIZE = 100_000  # twice the default mempool bound

# --- state owned by the app itself --------------------------------------------------------------------------
# app/chain_id                -> str
# app/tx_params               -> {"max_tx_bytes": int}
# tx/nonce/<address 20B>      -> int, the last nonce the account used (absent = 0)
CHAIN_ID_KEY = b"app/chain_id"
TX_PARAMS_KEY = b"app/tx_params"
NONCE_PREFIX = b"tx/nonce/"


@dataclass
class TxResult:
    """ExecTxResult / ResponseCheckTx: ``code`` 0 is success; otherwise ``codespace``/``code`` name the error."""

    code: int = 0
    codespace: str = ""
    log: str = ""
    data: bytes = b""
    events: list[Event] = field(default_factory=list)

    @classmethod
    def failure(cls, error: ChainError, events: list[Event] | None = None) -> TxResult:
        return cls(code=error.code, codespace=error.module, log=error.message, events=events or [])

    @property
    def ok(self) -> bool:
        return self.code == 0

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "codespace": self.codespace, "log": self.log,
                "data": self.data.hex(), "events": [e.to_json() for e in self.events]}


@dataclass
class BlockResult:
    """ResponseFinalizeBlock."""

    tx_results: list[TxResult]
    validator_updates: list[ValidatorUpdate]
    app_hash: bytes
    events: list[Event]


@dataclass
class QueryResult:
    code: int = 0
    codespace: str = ""
    log: str = ""
    value: bytes = b""
    height: int = 0


@dataclass
class _Pending:
    height: int
    state: BlockState
    lanes: Any = None
    time_ns: int = 0


class App:
    def __init__(self, store: Store, modules: tuple[ModuleSpec, ...] = MODULES) -> None:
        self.store = store
        self.modules = modules
        self._handlers = {msg: handler for module in modules for msg, handler in module.handlers.items()}
        self._verified: OrderedDict[bytes, SignedTx] = OrderedDict()
        self._pending: _Pending | None = None
        self._chain_id: str = self._read_chain_id(CommittedView(store))
        self._tx_params = TxParams(**CommittedView(store).get_value(TX_PARAMS_KEY, {}))
        # Block time as check_tx sees it; known again after a restart once a block is committed. Kept out of
        # state so that a block that changes nothing leaves the app hash alone.
        self._last_block_time = 0
        self._check_state: State = BlockState(store)
        # (the block being delivered, by a weak reference to its state; the work units delivered in it so far)
        self._block_units: tuple[weakref.ref[State] | None, int] = (None, 0)

    @staticmethod
    def _read_chain_id(view: Reader) -> str:
        return str(view.get_value(CHAIN_ID_KEY, ""))

    # --- ABCI: info and genesis ------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"data": APP_NAME, "version": str(APP_VERSION), "app_version": APP_VERSION,
                "last_block_height": self.store.height, "last_block_app_hash": self.store.app_hash}

    @property
    def chain_id(self) -> str:
        return self._chain_id

    def init_chain(self, genesis: Genesis) -> tuple[list[ValidatorUpdate], bytes]:
        """Load genesis state (committed with the first block); returns the validator set and app hash."""
        if self.store.height != 0:
            raise BAD_BLOCK(f"init_chain on a chain already at height {self.store.height}")
        state = BlockState(self.store)
        state.set_value(CHAIN_ID_KEY, genesis.chain_id)
        state.set_value(TX_PARAMS_KEY, params_to_json(genesis.tx_params))
        for module in self.modules:
            if module.init_genesis is not None:
                module.init_genesis(state, genesis.modules[module.name])
        self._chain_id = genesis.chain_id
        self._tx_params = genesis.tx_params
        self._last_block_time = genesis.genesis_time_ns
        self._pending = _Pending(height=genesis.initial_height - 1, state=state)
        self._check_state = State(state)  # the mempool's scratch view, over genesis, never written into it
        return authority.validator_set(state), checksum(self.store.digest_with(state.writes))

    def export_genesis(self, genesis_time: str) -> dict[str, Any]:
        view = CommittedView(self.store)
        app_state: dict[str, Any] = {"tx": params_to_json(self._tx_params)}
        for module in self.modules:
            if module.export_genesis is not None:
                app_state[module.name] = module.export_genesis(view)
        return {"chain_id": self._chain_id, "genesis_time": genesis_time,
                "initial_height": str(self.store.height + 1), "app_state": app_state}

    # --- ABCI: mempool ---------------------------------------------------------------------------------

    def check_tx(self, raw: bytes) -> TxResult:
        """Admit a transaction to the mempool if it would succeed on top of what the mempool already holds.

        Rechecks after each block cost little: decoding and the signature are cached. The run records no events:
        it is a scratch run whose events no one reads (CometBFT neither indexes nor forwards them).
        """
        try:
            tx = self.decode_verified(raw)
            block = BlockInfo(self.store.height + 1, self._last_block_time, b"", self._chain_id)
            return self._run_tx(self._check_state, tx, block, [], delivering=False)
        except ChainError as error:
            return TxResult.failure(error)

    def decode_verified(self, raw: bytes) -> SignedTx:
        """Decode and verify (size, shape, signature: what no state can change), remembering successes by their
        bytes: identical bytes always give an identical answer, so a transaction that passed check_tx is not
        verified again in a proposal, a recheck or its block. Raises the ChainError that names the problem."""
        cached = self._verified.get(raw)
        if cached is not None:
            return cached
        tx = decode_tx(raw, self._tx_params.max_tx_bytes)
        self._verified[raw] = tx
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return tx

    def fitting(self, txs: list[bytes], height: int) -> list[bytes]:
        """The leading ``txs`` whose work fits in block ``height`` (chain/fees.py): what a proposer includes."""
        bodies: list[TxBody | None] = []
        for raw in txs:
            try:
                bodies.append(self.decode_verified(raw).body)
            except ChainError:
                bodies.append(None)
        return txs[:fees.count_fitting(CommittedView(self.store), bodies, height)]

    # --- ABCI: blocks ----------------------------------------------------------------------------------

    def finalize_block(self, txs: list[bytes], height: int, time_ns: int, proposer: bytes) -> BlockResult:
        pending = self._pending
        if pending is None or pending.lanes is not None:
            pending = _Pending(height=self.store.height, state=BlockState(self.store))
        if height != pending.height + 1:
            raise BAD_BLOCK(f"block {height} does not follow committed height {pending.height}")
        block = BlockInfo(height, time_ns, proposer, self._chain_id)
        state = pending.state
        block_events: list[Event] = []
        updates: list[ValidatorUpdate] = []
        self._run_hooks("begin_block", state, block, block_events, updates)
        results = []
        for raw in txs:
            try:
                results.append(self._run_tx(state, self.decode_verified(raw), block, updates, delivering=True))
            except ChainError as error:
                results.append(TxResult.failure(error))
        self._run_hooks("end_block", state, block, block_events, updates)
        pending.height = height
        pending.time_ns = time_ns
        pending.lanes = self.store.digest_with(state.writes)
        self._pending = pending
        return BlockResult(results, updates, checksum(pending.lanes), block_events)

    def commit(self) -> int:
        """Persist the finalized block; returns the retain height (0: keep every block)."""
        pending = self._pending
        if pending is None or pending.lanes is None:
            raise BAD_BLOCK("commit without a finalized block")
        self.store.commit(pending.height, pending.state.writes, pending.lanes)
        self._last_block_time = pending.time_ns
        self._pending = None
        self._check_state = BlockState(self.store)
        return 0

    def _run_hooks(self, hook: str, state: State, block: BlockInfo, events: list[Event],
                   updates: list[ValidatorUpdate]) -> None:
        for module in self.modules:
            function = getattr(module, hook)
            if function is not None:
                ctx = Context(state, block)
                function(ctx)
                events.extend(ctx.events)
                updates.extend(ctx.validator_updates)

    def _run_tx(self, state: State, tx: SignedTx, block: BlockInfo, updates: list[ValidatorUpdate],
                delivering: bool) -> TxResult:
        """Run one transaction on ``state``. ``delivering``: in a block, where a failed transaction still pays its
        fee and events are recorded; otherwise (check_tx) a scratch run that keeps nothing and records no events."""
        body = tx.body
        if body.chain_id != self._chain_id:
            raise WRONG_CHAIN_ID(f"transaction is for chain '{body.chain_id[:50]}', this chain is '{self._chain_id}'")
        signer = body.signer_address
        last_nonce = state.get_int(NONCE_PREFIX + signer)
        if body.nonce <= last_nonce:
            raise NONCE_REPLAYED(f"nonce {body.nonce} was already used; the next nonce of {format_address(signer)} "
                                 f"is {last_nonce + 1}")
        if body.nonce > last_nonce + 1:
            raise NONCE_FUTURE(f"nonce {body.nonce} is ahead; the next nonce of {format_address(signer)} "
                               f"is {last_nonce + 1}")
        # The fee covers the work of the messages (chain/fees.py), and the block has room for that work.
        cost = fees.get_tx_cost(state, body)
        metered, units_so_far = self._block_units
        if delivering and (metered is None or metered() is not state):  # the block's first: its epochs go first
            units_so_far = fees.get_reserved_units(state, block.height)
        used = units_so_far if delivering else 0
        fees.check_block_room(bank.get_params(state), cost, used)
        envelope_state = TxState(state)
        envelope = Context(envelope_state, block, signer, record_events=delivering)
        bank.charge_fee(envelope, body.fee, cost.fee)
        if delivering:
            self._block_units = (weakref.ref(state), used + cost.block_units)
        envelope_state.set_int(NONCE_PREFIX + signer, body.nonce)
        if delivering:  # the fee and the nonce stay even if a message fails, so the messages get their own state
            envelope_state.apply()
            messages_state = TxState(envelope_state)
            ctx = Context(messages_state, block, signer)
        else:  # a check keeps nothing when a message fails: its messages run where the fee was charged
            messages_state, ctx = envelope_state, envelope
        try:
            for msg in body.messages:
                self._handlers[type(msg)](ctx, msg)
        except ChainError as error:
            return TxResult.failure(error, envelope.events)
        messages_state.apply()
        envelope_state.apply()
        if not delivering:
            return TxResult()
        updates.extend(ctx.validator_updates)
        return TxResult(events=envelope.events + ctx.events)

    # --- ABCI: queries ---------------------------------------------------------------------------------

    def query(self, path: str, data: bytes = b"", height: int = 0) -> QueryResult:
        """Answer ``/<module>/<query>/<args...>`` from committed state; the value is canonical codec bytes."""
        try:
            if self.store.height == 0:
                raise UNKNOWN_QUERY("the chain has no committed block yet")
            answered_height = height or self.store.height
            view = CommittedView(self.store, height or None)
            answer = self._answer(view, path, data)
            return QueryResult(value=codec.encode(answer), height=answered_height)
        except ChainError as error:
            return QueryResult(code=error.code, codespace=error.module, log=error.message, height=self.store.height)

    def _answer(self, view: Reader, path: str, data: bytes) -> Any:
        parts = [part for part in path.split("/") if part]
        if len(parts) < 2:
            raise UNKNOWN_QUERY(f"query path '{path[:100]}' should look like /<module>/<query>[/<args>]")
        module_name, query_name, args = parts[0], parts[1], parts[2:]
        if module_name == "tx" and query_name == "nonce" and len(args) == 1:
            return {"address": args[0], "nonce": view.get_int(NONCE_PREFIX + parse_address(args[0]))}
        if module_name == "app" and query_name == "info" and not args:
            return {"chain_id": self._chain_id, "tx_params": params_to_json(self._tx_params),
                    "modules": [m.name for m in self.modules]}
        for module in self.modules:
            if module.name == module_name:
                handler = module.queries.get(query_name)
                if handler is None and "*" in module.queries:  # e.g. /subnets/<netuid>/metagraph
                    handler, args = module.queries["*"], parts[1:]
                if handler is None:
                    break
                try:
                    return handler(view, args, data)
                except (ValueError, KeyError, TypeError) as exc:
                    raise BAD_QUERY(f"{path[:100]}: {exc}") from None
        raise UNKNOWN_QUERY(f"no query at '{path[:100]}'")

    # --- invariants ------------------------------------------------------------------------------------

    def check_invariants(self) -> list[str]:
        """Every breached invariant of committed state, as ``module/name: description``."""
        view = CommittedView(self.store)
        broken = []
        for module in self.modules:
            for name, invariant in module.invariants.items():
                problem = invariant(view)
                if problem is not None:
                    broken.append(f"{module.name}/{name}: {problem}")
        return broken
