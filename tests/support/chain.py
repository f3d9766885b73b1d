"""The chain as tests drive it: deterministic keys, a genesis, signed transactions, an app driven block by block
(``Chain``, or ``Driver`` by account name), and the balances a refused transaction must leave as they were."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from gridmint.chain import codec
from gridmint.chain.app import MODULES, App
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.genesis import Genesis, make_genesis_document, validate_genesis
from gridmint.chain.store import Store
from gridmint.chain.tx import Msg, TxBody, sign_tx

CHAIN_ID = "gridmint-test"
GENESIS_TIME = "2026-01-01T00:00:00Z"
MINT = 10**9
START_BALANCE = 1_000 * MINT
MIN_TX_FEE = 10_000  # the genesis min_tx_fee
FEE = 10_000_000  # what `signed` pays unless told: more than any message of the default shapes requires


def key(name: str) -> PrivateKey:
    """A deterministic key per name, so failures are reproducible."""
    return PrivateKey(hashlib.sha256(b"gridmint test key " + name.encode()).digest())


def genesis(authorities: int = 1, accounts: tuple[str, ...] = ("alice", "bob"), chain_id: str = CHAIN_ID,
            balance: int = START_BALANCE, **sections: dict) -> Genesis:  # type: ignore[type-arg]
    """A validated genesis; ``sections`` replace whole app_state sections (e.g. ``subnets={"params": ...}``)."""
    document = make_genesis_document(
        chain_id, GENESIS_TIME,
        [(f"authority-{i}", key(f"authority-{i}").public_key) for i in range(authorities)],
        [(format_address(key(name).address), balance) for name in accounts],
        min_tx_fee=MIN_TX_FEE,
    )
    document["app_state"].update(sections)
    return validate_genesis(document, MODULES)


def make_app(path: Path, gen: Genesis | None = None) -> App:
    app = App(Store(path / "state.sqlite"))
    app.init_chain(gen or genesis())
    return app


def signed(signer: PrivateKey, nonce: int, *messages: Msg, fee: int = FEE, chain_id: str = CHAIN_ID,
           memo: str = "") -> bytes:
    return sign_tx(TxBody(chain_id, signer.public_key, nonce, fee, tuple(messages), memo), signer)


def forged(raw: bytes, by: PrivateKey | None = None) -> bytes:
    """The same transaction body under another key's signature (``by``, mallory's by default): its signature does not
    hold for its signer."""
    body_bytes = codec.decode(raw)[0]
    return codec.encode([body_bytes, (by or key("mallory")).sign(body_bytes)])


def required_fee(app: App, *messages: Msg, memo: str = "") -> int:
    """The fee the chain requires for ``messages`` on the state check_tx sees (chain/fees.py); that state holds
    genesis before the first block is committed."""
    from gridmint.chain import fees

    return fees.get_tx_cost(app._check_state, TxBody(CHAIN_ID, b"", 0, 0, tuple(messages), memo)).fee


class Chain:
    """An app plus block bookkeeping, for tests that drive blocks by hand."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.height = app.store.height
        self.time_ns = 1_767_225_600 * 10**9

    def block(self, *txs: bytes) -> list:  # type: ignore[type-arg]
        self.height += 1
        self.time_ns += 10**9
        result = self.app.finalize_block(list(txs), self.height, self.time_ns, key("authority-0").address)
        self.app.commit()
        return result.tx_results  # type: ignore[no-any-return]


def balances(app: App, *names: str) -> dict[str, int]:
    """Each named account's balance (of ``key(name)``) in committed state."""
    from gridmint.chain.bank import get_balance
    from gridmint.chain.state import CommittedView

    view = CommittedView(app.store)
    return {name: get_balance(view, key(name).address) for name in names}


def balance(app: App, name: str) -> int:
    """``key(name)``'s balance in committed state."""
    return balances(app, name)[name]


def snapshot(app: App) -> tuple[bytes, int, dict[str, int]]:
    """What a refused transaction must leave unchanged: app hash, height and balances."""
    return app.store.app_hash, app.store.height, balances(app, "alice", "bob", "carol")


class Driver(Chain):
    """A chain driven by name: ``send("alice", msg, ...)`` signs with the next nonce and queues the transaction;
    ``block()`` commits what is queued. Results of the last block are kept by signer name."""

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.nonces: dict[str, int] = {}
        self.queued: list[tuple[str, bytes]] = []
        self.last: dict[str, list] = {}  # type: ignore[type-arg]

    def send(self, name: str, *messages: Msg) -> None:
        from gridmint.chain.state import CommittedView

        if name not in self.nonces:
            self.nonces[name] = CommittedView(self.app.store).get_int(b"tx/nonce/" + key(name).address)
        self.nonces[name] += 1
        fee = max(FEE, required_fee(self.app, *messages))  # FEE unless more is required: tests count on it
        self.queued.append((name, signed(key(name), self.nonces[name], *messages, fee=fee)))

    def commit(self) -> dict[str, list]:  # type: ignore[type-arg]
        """One block with everything queued; returns the results by signer and re-syncs nonces of failures."""
        names = [name for name, _ in self.queued]
        results = self.block(*(raw for _, raw in self.queued))
        self.queued = []
        self.last = {}
        for name, result in zip(names, results, strict=True):
            self.last.setdefault(name, []).append(result)
            if result.codespace == "tx":  # an envelope refusal does not use the nonce
                self.nonces.pop(name, None)
        return self.last

    def ok(self, name: str, *messages: Msg) -> None:
        """Send in a block of its own and insist that it succeeded."""
        self.send(name, *messages)
        (result,) = self.commit()[name]
        assert result.code == 0, result.log

    def advance(self, blocks: int) -> None:
        for _ in range(blocks):
            self.block()


def assert_refused(driver: Driver, signer: str, message: Msg, expected: str,
                   module_state: Callable[[], object]) -> None:
    """``message`` from ``signer`` is refused with the error named ``expected`` both by check_tx (the mempool,
    which changes no state) and in a block, where only the fee and the nonce move: ``module_state()`` (what the
    module under test stores) and the invariants are as before."""
    from gridmint.chain.errors import lookup
    from gridmint.chain.state import CommittedView

    nonce = CommittedView(driver.app.store).get_int(b"tx/nonce/" + key(signer).address) + 1
    raw = signed(key(signer), nonce, message, fee=max(FEE, required_fee(driver.app, message)))
    app_hash, before = driver.app.store.app_hash, module_state()
    checked = driver.app.check_tx(raw)
    kind = lookup(checked.codespace, checked.code)
    assert kind is not None and kind.name == expected, checked.log
    assert checked.log and driver.app.store.app_hash == app_hash
    (in_block,) = driver.block(raw)
    driver.nonces.pop(signer, None)  # the fee and nonce were spent outside the driver: it re-reads the nonce
    assert lookup(in_block.codespace, in_block.code) == kind
    assert module_state() == before
    assert driver.app.check_invariants() == []
