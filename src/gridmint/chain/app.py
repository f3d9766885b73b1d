"""The application, in the shape of ABCI 2 (CometBFT v0.38): ``info``, ``init_chain``, ``check_tx``, ``finalize_block``,
``commit`` and ``query``. The devnode calls it directly; under CometBFT an ABCI server calls the same methods.

A transaction is processed in two stages. First its envelope: chain id, nonce (exactly the account's last nonce
+ 1), fee at least what its messages require (chain/fees.py) and covered by the balance, and room for their work
in the block. A transaction that fails here is invalid and changes nothing. Then its messages, atomically: if any
fails, the block keeps only the fee (burned) and the nonce bump. ``check_tx`` runs both stages against a scratch
copy of the state that tracks what the mempool already holds, and admits a transaction only if both succeed.

Anyone can send a transaction or a query, so ``query`` and ``check_tx`` never raise: a refusal is a coded result,
and an exception that no check foresaw becomes ``app/internal_error`` (logged), never a dropped connection.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gridmint.chain import (
    authority,
    bank,
    codec,
    commitments,
    credit,
    emission,
    escrow,
    fees,
    market,
    staking,
    subnets,
    weights,
)
from gridmint.chain.crypto import format_address
from gridmint.chain.errors import (
    BAD_BLOCK,
    HEIGHT_UNAVAILABLE,
    INTERNAL_ERROR,
    INVALID_GENESIS,
    NONCE_FUTURE,
    NONCE_REPLAYED,
    UNKNOWN_QUERY,
    WRONG_CHAIN_ID,
    ChainError,
)
from gridmint.chain.genesis import Genesis, TxParams
from gridmint.chain.lthash import checksum
from gridmint.chain.module import BlockInfo, Context, Event, ModuleSpec, ValidatorUpdate, message_registry
from gridmint.chain.params import params_to_json
from gridmint.chain.query_args import check_data, check_height, check_path, expect_args, parse_address_arg
from gridmint.chain.state import BlockState, CommittedView, Reader, State, TxState
from gridmint.chain.store import Diff, Store
from gridmint.chain.tx import SignedTx, TxBody, decode_tx

APP_NAME = "gridmint"
# The state machine's version: raised whenever blocks or stored records change meaning (2: credit lines on fixed
# terms and receipt-backed settlement; 3: the commitments module, and results that carry what a message created;
# 4: a pruned hotkey's and a dissolved subnet's commitments are deleted, escrow and emission parameters), so that
# a node, or `gridmint up` resuming a local network, can tell.
APP_VERSION = 4
# Order matters only for block hooks: emission's end_block runs after every message of the block.
MODULES: tuple[ModuleSpec, ...] = (bank.MODULE, authority.MODULE, subnets.MODULE, staking.MODULE, weights.MODULE,
                                   emission.MODULE, market.MODULE, escrow.MODULE, credit.MODULE, commitments.MODULE)
MESSAGE_TYPES = message_registry(MODULES)  # what the chain decodes: the messages its modules handle
# The verified-transaction cache holds only transactions that passed check_tx, and at most this many bytes of
# them (estimated by ``cached_footprint``: decoded objects as well as raw bytes), oldest evicted first. Enough for
# a mempool of ~70,000 small transfers; a flood of refused transactions adds nothing to it.
VERIFIED_CACHE_BYTES = 64 * 1024 * 1024
VERIFIED_ENTRY_OVERHEAD = 640  # the SignedTx, its body, its message objects and the cache's own entry

log = logging.getLogger("gridmint.chain")

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


@dataclass
class BlockResult:
    """ResponseFinalizeBlock."""

    tx_results: list[TxResult]
    validator_updates: list[ValidatorUpdate]
    app_hash: bytes
    events: list[Event]


@dataclass(frozen=True)
class BlockFill:
    """What a proposer puts in the next block, and whether transactions wait for want of room in it."""

    txs: list[bytes]
    full: bool


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
    diff: Diff | None = None  # the block's changes against committed state, read once for digest and commit


class App:
    def __init__(self, store: Store, modules: tuple[ModuleSpec, ...] = MODULES) -> None:
        self.store = store
        self.modules = modules
        self._handlers = {msg: handler for module in modules for msg, handler in module.handlers.items()}
        self._message_types = message_registry(modules)
        self._verified: OrderedDict[bytes, tuple[SignedTx, int]] = OrderedDict()  # raw -> (tx, footprint)
        self._verified_bytes = 0
        self._pending: _Pending | None = None
        self._chain_id: str = self._read_chain_id(CommittedView(store))
        self._tx_params = TxParams(**CommittedView(store).get_value(TX_PARAMS_KEY, {}))
        # Block time as check_tx sees it; known again after a restart once a block is committed. Kept out of
        # state so that a block that changes nothing leaves the app hash alone.
        self._last_block_time = 0
        self._check_state: State = BlockState(store)
        # (the block being delivered, by a weak reference to its state; the work units delivered in it so far)
        # Work units the block being finalized has used (chain/fees.py); None until its first transaction, which
        # first reserves the epochs due at the block's end.
        self._block_units: int | None = None

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
        for account, nonce in genesis.nonces:
            state.set_int(NONCE_PREFIX + account, nonce)
        for module in self.modules:
            if module.init_genesis is not None:
                module.init_genesis(state, genesis.modules[module.name])
        # An exported genesis carries every module's records; records that disagree with each other or with the
        # bank (a hand-edited file, a truncated one) are refused here, before anything is kept.
        try:
            broken = self._broken_invariants(state)
        except Exception as error:  # a record of the wrong shape, which an invariant could not read
            raise INVALID_GENESIS(f"the genesis state holds a record its module cannot read ({type(error).__name__}: "
                                  f"{str(error)[:200]})") from None
        if broken:
            raise INVALID_GENESIS(f"the genesis state breaks {len(broken)} invariant(s): {'; '.join(broken[:3])}")
        self._chain_id = genesis.chain_id
        self._tx_params = genesis.tx_params
        self._last_block_time = genesis.genesis_time_ns
        self._pending = _Pending(height=genesis.initial_height - 1, state=state)
        self._check_state = State(state)  # the mempool's scratch view, over genesis, never written into it
        return authority.validator_set(state), checksum(self.store.digest_with(state.writes))

    def export_genesis(self, genesis_time: str, height: int | None = None) -> dict[str, Any]:
        """The committed state at ``height`` (the latest when None) as a genesis whose chain starts at the next
        height: every key of the state, so ``init_chain`` from it gives the same app hash. Raises
        ``query/height_unavailable`` when the store has pruned that height."""
        view = CommittedView(self.store, height)
        if height is not None and not 1 <= height <= self.store.height:
            raise HEIGHT_UNAVAILABLE(f"height {height} is not committed; the latest is {self.store.height}")
        app_state: dict[str, Any] = {
            "tx": view.get_value(TX_PARAMS_KEY, {}),
            "nonces": [{"address": format_address(account), "nonce": nonce}
                       for account, nonce in view.scan_values(NONCE_PREFIX)],
        }
        for module in self.modules:
            if module.export_genesis is not None:
                app_state[module.name] = module.export_genesis(view)
        return {"chain_id": self._read_chain_id(view), "genesis_time": genesis_time,
                "initial_height": str(view.height + 1), "app_state": app_state}

    # --- ABCI: mempool ---------------------------------------------------------------------------------

    def check_tx(self, raw: bytes, signature_verified: bool = False) -> TxResult:
        """Admit a transaction to the mempool if it would succeed on top of what the mempool already holds.

        Rechecks after each block cost little: a transaction that passed is remembered decoded and verified. The
        run records no events: it is a scratch run whose events no one reads (CometBFT neither indexes nor
        forwards them). Never raises: whatever goes wrong is a refusal with a code, and refuses nothing else.
        ``signature_verified``: ``tx.signatures_hold`` said so for these very bytes (see ``decode_tx``).
        """
        tx: SignedTx | None = None
        try:
            tx = self.decode_verified(raw, signature_verified)
            block = BlockInfo(self.store.height + 1, self._last_block_time, b"", self._chain_id)
            result = self._run_tx(self._check_state, tx, block, [], delivering=False)
        except ChainError as error:
            result = TxResult.failure(error)
        except Exception as error:  # a bug must refuse one transaction, not stop the node
            result = TxResult.failure(_internal_error("check_tx", error))
        if result.ok and tx is not None:
            self._remember(raw, tx)
        else:
            self._forget(raw)  # passed once, fails now (its nonce used, its funds spent): no longer worth keeping
        return result

    def decode_verified(self, raw: bytes, signature_verified: bool = False) -> SignedTx:
        """Decode and verify (size, shape, signature: what no state can change). A transaction that passed
        check_tx is remembered by its bytes (identical bytes always give an identical answer), so it is not
        verified again in a proposal, a recheck or its block. Raises the ChainError that names the problem."""
        cached = self._verified.get(raw)
        if cached is not None:
            return cached[0]
        return decode_tx(raw, self._tx_params.max_tx_bytes, types=self._message_types,
                         signature_verified=signature_verified)

    @property
    def verified_cache_bytes(self) -> int:
        """The estimated bytes the verified-transaction cache holds (never above ``VERIFIED_CACHE_BYTES``)."""
        return self._verified_bytes

    def _remember(self, raw: bytes, tx: SignedTx) -> None:
        if raw in self._verified:
            self._verified.move_to_end(raw)
            return
        size = cached_footprint(tx)
        if size > VERIFIED_CACHE_BYTES:
            return
        self._verified[raw] = (tx, size)
        self._verified_bytes += size
        while self._verified_bytes > VERIFIED_CACHE_BYTES:
            _, (_, evicted) = self._verified.popitem(last=False)
            self._verified_bytes -= evicted

    def _forget(self, raw: bytes) -> None:
        entry = self._verified.pop(raw, None)
        if entry is not None:
            self._verified_bytes -= entry[1]

    def fitting(self, txs: list[bytes], height: int) -> BlockFill:
        """The ``txs``, in order, whose work fits in block ``height`` (chain/fees.py ``select_fitting``): what a
        proposer includes; the others wait for a later block, which may follow at once when this one is full."""
        bodies: list[TxBody | None] = []
        for raw in txs:
            try:
                bodies.append(self.decode_verified(raw).body)
            except ChainError:
                bodies.append(None)
        # A block's view caches what it reads: every transaction is priced on the same parameters and subnets, on
        # the state the block will run on (for the first block, the genesis: a genesis's max_block_units holds there).
        selection = fees.select_fitting(self._next_block().state, bodies, height)
        return BlockFill([txs[position] for position in selection.positions], selection.full)

    # --- ABCI: blocks ----------------------------------------------------------------------------------

    def finalize_block(self, txs: list[bytes], height: int, time_ns: int, proposer: bytes) -> BlockResult:
        """Run a block. No transaction can stop it: each ends as a result (see ``_deliver``). A block hook that
        raises still stops the node, deliberately: its writes would be half done, and skipping it would leave a
        chain that runs on with, say, no emission or no escrow closures, where a halt at the same height on every
        node is safe, visible and resumed by a fixed release replaying the block. Validator updates go out one
        per key (``coalesce_updates``)."""
        pending = self._next_block()
        if height != pending.height + 1:
            raise BAD_BLOCK(f"block {height} does not follow committed height {pending.height}")
        block = BlockInfo(height, time_ns, proposer, self._chain_id)
        state = pending.state
        set_at_start = {update.pub_key for update in authority.validator_set(state)}
        block_events: list[Event] = []
        updates: list[ValidatorUpdate] = []
        self._run_hooks("begin_block", state, block, block_events, updates)
        self._block_units = None
        results = [self._deliver(state, raw, block, updates) for raw in txs]
        self._run_hooks("end_block", state, block, block_events, updates)
        for raw in txs:  # its nonce is spent: the cache would keep it for nothing
            self._forget(raw)
        pending.height = height
        pending.time_ns = time_ns
        pending.diff = self.store.diff(state.writes)
        pending.lanes = self.store.digest_with(state.writes, pending.diff)
        self._pending = pending
        return BlockResult(results, coalesce_updates(updates, set_at_start), checksum(pending.lanes), block_events)

    def _next_block(self) -> _Pending:
        """What the next block runs on: the genesis state until the first block is committed with it (not yet
        finalized: no lanes), else a fresh view of the committed store."""
        pending = self._pending
        if pending is None or pending.lanes is not None:
            return _Pending(height=self.store.height, state=BlockState(self.store))
        return pending

    def _deliver(self, state: State, raw: bytes, block: BlockInfo, updates: list[ValidatorUpdate]) -> TxResult:
        """One transaction of a block. Whatever the bytes hold, it ends as a result: a failed transaction keeps at
        most its fee and nonce, like any other. Every node raises alike on alike input, so the code is agreed;
        only running out of memory, which one node may and another not, stops the node instead of forking it."""
        try:
            return self._run_tx(state, self.decode_verified(raw), block, updates, delivering=True)
        except ChainError as error:
            return TxResult.failure(error)
        except MemoryError:
            raise
        except Exception as error:  # see the docstring
            return TxResult.failure(_internal_error("finalize_block", error))

    def commit(self) -> int:
        """Persist the finalized block; returns the retain height (0: keep every block)."""
        pending = self._pending
        if pending is None or pending.lanes is None:
            raise BAD_BLOCK("commit without a finalized block")
        self.store.commit(pending.height, pending.state.writes, pending.lanes, pending.diff)
        self._last_block_time = pending.time_ns
        self._pending = None
        self._check_state = BlockState(self.store)
        return 0

    def _run_hooks(self, hook: str, state: State, block: BlockInfo, events: list[Event],
                   updates: list[ValidatorUpdate]) -> None:
        for module in self.modules:
            function = getattr(module, hook)
            if function is not None:
                ctx = Context(state, block, modules=self.modules)
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
        params = bank.get_params(state)
        cost = fees.get_tx_cost(state, body, params)
        used = 0
        if delivering:
            if self._block_units is None:  # the block's first transaction: its due epochs go first
                self._block_units = fees.get_reserved_units(state, block.height)
            used = self._block_units
        fees.check_block_room(params, cost, used)
        envelope_state = TxState(state)
        envelope = Context(envelope_state, block, signer, record_events=delivering, modules=self.modules)
        bank.charge_fee(envelope, body.fee, cost.fee)
        if delivering:
            self._block_units = used + cost.block_units
        envelope_state.set_int(NONCE_PREFIX + signer, body.nonce)
        if delivering:  # the fee and the nonce stay even if a message fails, so the messages get their own state
            envelope_state.apply()
            messages_state = TxState(envelope_state)
            ctx = Context(messages_state, block, signer, modules=self.modules)
        else:  # a check keeps nothing when a message fails: its messages run where the fee was charged
            messages_state, ctx = envelope_state, envelope
        try:
            answers = [self._handlers[type(msg)](ctx, msg) for msg in body.messages]
        except ChainError as error:
            return TxResult.failure(error, envelope.events)
        messages_state.apply()
        envelope_state.apply()
        if not delivering:
            return TxResult()
        updates.extend(ctx.validator_updates)
        return TxResult(data=result_data(answers), events=envelope.events + ctx.events)

    # --- ABCI: queries ---------------------------------------------------------------------------------

    def query(self, path: str, data: bytes = b"", height: int = 0, store: Store | None = None) -> QueryResult:
        """Answer ``/<module>/<query>/<args...>`` from committed state; the value is canonical codec bytes.
        Never raises and never writes: anything wrong with the path, data or height is a coded refusal.

        ``store``: another reader of the same committed state to answer from (the devnode's query threads pass
        a read snapshot of their own); the app's store otherwise. Nothing else the query reads changes after
        ``init_chain``, so a query may run on another thread than the blocks."""
        source = self.store if store is None else store
        latest = source.height
        try:
            if latest == 0:
                raise UNKNOWN_QUERY("the chain has no committed block yet")
            path, data, height = check_path(path), check_data(data), check_height(height, latest)
            view = CommittedView(source, height or None)
            answer = self._answer(view, path, data)
            return QueryResult(value=codec.encode(answer), height=height or latest)
        except ChainError as error:
            return QueryResult(code=error.code, codespace=error.module, log=error.message, height=latest)
        except Exception as error:  # a query must never stop the node
            refusal = _internal_error("query", error)
            return QueryResult(code=refusal.code, codespace=refusal.module, log=refusal.message, height=latest)

    def _answer(self, view: Reader, path: str, data: bytes) -> Any:
        parts = [part for part in path.split("/") if part]
        if len(parts) < 2:
            raise UNKNOWN_QUERY(f"query path '{path[:100]}' should look like /<module>/<query>[/<args>]")
        module_name, query_name, args = parts[0], parts[1], parts[2:]
        if module_name == "tx" and query_name == "nonce":
            (address_text,) = expect_args(args, 1, "/tx/nonce/<address>")
            return {"address": address_text, "nonce": view.get_int(NONCE_PREFIX + parse_address_arg("address",
                                                                                                    address_text))}
        if module_name == "app" and query_name == "info":
            expect_args(args, 0, "/app/info")
            return {"chain_id": self._chain_id, "tx_params": params_to_json(self._tx_params),
                    "modules": [m.name for m in self.modules]}
        for module in self.modules:
            if module.name == module_name:
                handler = module.queries.get(query_name)
                if handler is None and "*" in module.queries:  # e.g. /subnets/<netuid>/metagraph
                    handler, args = module.queries["*"], parts[1:]
                if handler is None:
                    break
                return handler(view, args, data)
        raise UNKNOWN_QUERY(f"no query at '{path[:100]}'")

    # --- invariants ------------------------------------------------------------------------------------

    def check_invariants(self) -> list[str]:
        """Every breached invariant of committed state, as ``module/name: description``."""
        return self._broken_invariants(CommittedView(self.store))

    def _broken_invariants(self, view: Reader) -> list[str]:
        broken = []
        for module in self.modules:
            for name, invariant in module.invariants.items():
                problem = invariant(view)
                if problem is not None:
                    broken.append(f"{module.name}/{name}: {problem}")
        return broken


def _internal_error(where: str, error: Exception) -> ChainError:
    """The refusal for an exception no check foresaw: logged with its traceback for the operator; the answer
    names only its type (its text may quote the input at length)."""
    log.error("%s: unexpected %s", where, type(error).__name__, exc_info=error)
    outcome = {"query": "nothing was read", "check_tx": "the transaction was not admitted",
               "finalize_block": "the transaction failed (its fee and nonce are kept if its envelope passed)"}[where]
    return INTERNAL_ERROR(f"the app could not process this ({type(error).__name__}): {outcome}. This is a bug; "
                          "please report it")


def coalesce_updates(updates: list[ValidatorUpdate], set_at_start: set[bytes]) -> list[ValidatorUpdate]:
    """One update per key, the last one winning, in the order keys first changed: CometBFT halts on a block
    whose updates name a key twice. A key added and removed in the same block never reached CometBFT, and
    removing it there would halt it too ("failed to find validator to remove"), so that update is dropped."""
    last: dict[bytes, int] = {}
    for update in updates:
        last[update.pub_key] = update.power  # a dict keeps the order in which keys were first set
    return [ValidatorUpdate(pub_key, power) for pub_key, power in last.items()
            if power != 0 or pub_key in set_at_start]


def result_data(answers: list[dict[str, int] | None]) -> bytes:
    """A transaction's result data: what each of its messages created, in message order (None where nothing), as
    canonical codec bytes; empty where no message created anything, as before handlers answered."""
    if all(answer is None for answer in answers):
        return b""
    return codec.encode(answers)


def cached_footprint(tx: SignedTx) -> int:
    """Bytes a decoded transaction holds in memory, estimated from above: its raw bytes, its objects, and a
    pointer plus an object for each item of the lists its messages carry (a 4,096-entry weight vector holds
    ~150 KB decoded, against 12 KB raw)."""
    total = VERIFIED_ENTRY_OVERHEAD + len(tx.raw) + len(tx.body.memo) + len(tx.body.chain_id)
    values: list[Any] = [getattr(message, name) for message in tx.body.messages for name, _ in message.FIELDS]
    while values:
        value = values.pop()
        if isinstance(value, list):
            total += 56 + 8 * len(value)
            values.extend(value)
        elif isinstance(value, (bytes, str)):
            total += 49 + len(value)
        else:
            total += 32
    return total
