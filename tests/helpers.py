"""Helpers shared by the suite: deterministic keys, a genesis, signed transactions, an app driven by hand."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridmint.chain.app import MODULES, App
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.genesis import Genesis, make_genesis_document, validate_genesis
from gridmint.chain.store import Store
from gridmint.chain.tx import Msg, TxBody, sign_tx
from gridmint.ports import free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
    from gridmint.chain.bank import get_balance
    from gridmint.chain.state import CommittedView

    view = CommittedView(app.store)
    return {name: get_balance(view, key(name).address) for name in names}


def snapshot(app: App) -> tuple[bytes, int, dict[str, int]]:
    """What a refused transaction must leave unchanged: app hash, height and balances."""
    return app.store.app_hash, app.store.height, balances(app, "alice", "bob", "carol")


def write_data_dir(data_dir: Path, accounts: tuple[str, ...] = ("alice", "bob")) -> None:
    """A devnode data directory whose authority is ``key("authority-0")`` and whose accounts are funded."""
    from gridmint.chain.genesis import write_genesis
    from gridmint.node.devnode import write_node_key

    data_dir.mkdir(parents=True, exist_ok=True)
    write_node_key(data_dir, key("authority-0").seed)
    document = make_genesis_document(
        CHAIN_ID, GENESIS_TIME, [("authority-0", key("authority-0").public_key)],
        [(format_address(key(name).address), START_BALANCE) for name in accounts], min_tx_fee=MIN_TX_FEE)
    write_genesis(data_dir / "genesis.json", document)


class DevnodeProcess:
    """A real devnode process on a loopback port, for tests that need sockets, signals or restarts."""

    def __init__(self, data_dir: Path, block_time: float = 0.2) -> None:
        self.data_dir = data_dir
        self.block_time = block_time
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        import time

        import httpx

        log = (self.data_dir / "devnode.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir", str(self.data_dir),
             "--block-time", str(self.block_time), "--rpc-laddr", f"127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devnode exited with {self.process.returncode}: "
                                   f"{(self.data_dir / 'devnode.log').read_text()[-2000:]}")
            try:
                answer = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "status"}, timeout=2)
                if int(answer.json()["result"]["sync_info"]["latest_block_height"]) >= 1 or self.block_time == 0:
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("devnode did not answer in time")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


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


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    """``condition()``'s first truthy value, polled; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def imported_modules(source: str) -> list[str]:
    """The absolute module names ``source`` imports (``import a.b``, ``from a.b import c``), in order."""
    import ast

    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None = None, log: Path | None = None,
                 timeout_s: float = 60) -> None:
    """Until ``url``/health answers 200; fails at once if ``process`` exits meanwhile (quoting ``log``)."""
    import httpx  # only the tests that start servers pay for the import

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{url}: the process exited with {process.returncode}"
                                 + (f":\n{log.read_text(errors='replace')[-3000:]}" if log else ""))
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up within {timeout_s:g} s"
                         + (f":\n{log.read_text(errors='replace')[-3000:]}" if log else ""))


def processes_of(uid: int) -> list[int]:
    """Pids of the host's processes owned by ``uid`` (a sandboxed lease's user)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


def serve_asgi(app: Any, **options: Any) -> tuple[str, Any, threading.Thread]:
    """``app`` served by uvicorn on a free loopback port in a thread of this process (for tests that need a real
    HTTP server in process): its URL, the server (set ``should_exit`` to stop it) and the thread."""
    import uvicorn  # only the tests that serve something pay for the import

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off",
                                           **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread
