"""The chain client: JSON-RPC to a devnode or a CometBFT node (same methods), signing and waiting for inclusion.

Every answer is checked before use; failures raise ChainErrors with stable codes (``client/*`` for transport
problems, the chain's own codes for refused transactions), never a bare HTTP or JSON exception.
"""

from __future__ import annotations

import base64
import itertools
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

from gridmint.chain import bank, codec, commitments, fees, neurons, subnets
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import NONCE_REPLAYED, ChainError, ErrorKind, lookup
from gridmint.chain.params import params_to_json
from gridmint.chain.tx import Msg, TxBody, sign_tx
from gridmint.client.errors import NODE_UNREACHABLE, RPC_FAILED, TX_TIMEOUT

DEFAULT_NODE = "http://127.0.0.1:26657"
NONCE_RETRIES = 8  # signing again after another sender of the same key took the nonce (ChainClient.send)

log = logging.getLogger("gridmint.client")


def default_node_url() -> str:
    return os.environ.get("GRIDMINT_NODE", DEFAULT_NODE)


@dataclass(frozen=True)
class TxOutcome:
    hash: str
    height: int
    code: int
    codespace: str
    log: str
    events: list[dict[str, Any]]
    data: bytes = b""  # the result's data: what each message created (chain/app.py ``result_data``)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def created(self, index: int = 0) -> dict[str, int]:
        """What message ``index`` created (a subnet's netuid, a UID, an order, a lease, a line, a proposal), as its
        handler answered; empty where it created nothing."""
        answers = codec.decode(self.data) if self.data else []
        answer = answers[index] if isinstance(answers, list) and index < len(answers) else None
        return dict(answer) if isinstance(answer, dict) else {}

    def attribute(self, event_type: str, key: str) -> str | None:
        """The value of ``key`` in the first ``event_type`` event the transaction emitted."""
        for event in self.events:
            if event["type"] == event_type:
                for attribute in event["attributes"]:
                    if attribute["key"] == key:
                        return str(attribute["value"])
        return None


def _result_data(executed: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(executed.get("data") or "", validate=True)
    except (ValueError, TypeError):
        raise RPC_FAILED("the node answered a transaction result whose data is not base64") from None


def raise_for_code(code: int, codespace: str, log: str) -> None:
    """Turn a non-zero result code into the ChainError it stands for."""
    if code:
        kind = lookup(codespace, code) or ErrorKind(codespace, code, "unknown")
        raise ChainError(kind, log)


class ChainClient:
    def __init__(self, url: str | None = None, timeout: float = 15.0) -> None:
        self.url = (url or default_node_url()).rstrip("/")
        # TCP_NODELAY: a JSON-RPC request is written in two pieces, and Nagle's algorithm would hold the second
        # until the node's delayed ACK (tens of milliseconds on small requests).
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = self._http.post("/", json=request)
        except httpx.HTTPError as exc:
            raise NODE_UNREACHABLE(f"cannot reach the node at {self.url} ({exc.__class__.__name__}); "
                                   "is it running? Set --node or GRIDMINT_NODE") from None
        try:
            answer = response.json()
        except ValueError:
            raise RPC_FAILED(f"the node at {self.url} answered {response.status_code} without JSON") from None
        if not isinstance(answer, dict):
            raise RPC_FAILED(f"unexpected answer from {self.url}")
        if "error" in answer:
            error = answer["error"]
            raise RPC_FAILED(f"{method} failed: {error.get('message')} {error.get('data', '')}".strip())
        return answer.get("result")

    # --- reads -----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status")
        return result

    def chain_id(self) -> str:
        return str(self.status()["node_info"]["network"])

    def height(self) -> int:
        return int(self.status()["sync_info"]["latest_block_height"])

    def query(self, path: str, data: bytes = b"", height: int = 0) -> Any:
        params: dict[str, Any] = {"path": path, "data": data.hex()}
        if height:
            params["height"] = str(height)
        response = self.call("abci_query", **params)["response"]
        raise_for_code(int(response["code"]), response.get("codespace", ""), response.get("log", ""))
        return codec.decode(base64.b64decode(response["value"]))

    def balance(self, address: str, height: int = 0) -> int:
        return int(self.query(f"/bank/balance/{address}", height=height)["balance"])

    def nonce(self, address: str, height: int = 0) -> int:
        return int(self.query(f"/tx/nonce/{address}", height=height)["nonce"])

    def block(self, height: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self.call("block", **({"height": str(height)} if height else {}))
        return result

    def tx(self, tx_hash: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("tx", hash=base64.b64encode(bytes.fromhex(tx_hash)).decode())
        return result

    # --- writes ----------------------------------------------------------------------------------------

    def sign(self, key: PrivateKey, messages: list[Msg], fee: int, memo: str = "", nonce: int | None = None,
             chain_id: str | None = None) -> bytes:
        if nonce is None:
            nonce = self.nonce(format_address(key.address)) + 1
        body = TxBody(chain_id or self.chain_id(), key.public_key, nonce, fee, tuple(messages), memo)
        return sign_tx(body, key)

    def broadcast_sync(self, raw: bytes) -> str:
        """Submit to the mempool; raises the chain's error if ``check_tx`` refuses. Returns the hash."""
        result = self.call("broadcast_tx_sync", tx=base64.b64encode(raw).decode())
        raise_for_code(int(result["code"]), result.get("codespace", ""), result.get("log", ""))
        return str(result["hash"])

    def broadcast_commit(self, raw: bytes) -> TxOutcome:
        """Submit and wait for the block; raises if refused at entry, returns the outcome otherwise."""
        result = self.call("broadcast_tx_commit", tx=base64.b64encode(raw).decode())
        check = result["check_tx"]
        raise_for_code(int(check["code"]), check.get("codespace", ""), check.get("log", ""))
        executed = result["tx_result"]
        return TxOutcome(result["hash"], int(result["height"]), int(executed["code"]), executed.get("codespace", ""),
                         executed.get("log", ""), executed.get("events", []), _result_data(executed))

    def wait_for_tx(self, tx_hash: str, timeout: float = 30.0) -> TxOutcome:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.tx(tx_hash)
            except ChainError as error:
                if error.kind != RPC_FAILED or time.monotonic() > deadline:
                    if time.monotonic() > deadline:
                        raise TX_TIMEOUT(f"transaction {tx_hash} was not committed within {timeout:.0f} s") from None
                    raise
                time.sleep(0.1)
                continue
            executed = found["tx_result"]
            return TxOutcome(tx_hash, int(found["height"]), int(executed["code"]), executed.get("codespace", ""),
                             executed.get("log", ""), executed.get("events", []), _result_data(executed))

    def required_fee(self, messages: list[Msg], memo: str = "") -> int:
        """The fee the chain requires for these messages now: chain/fees.py's own function, fed with the fee
        parameters and the hyperparameters of the subnets the messages touch, as the node answers them."""
        params = bank.Params(**self.query("/bank/params"))

        def shape_of(netuid: int) -> dict[str, int] | None:
            try:
                return dict(self.query(f"/subnets/{netuid}")["params"])
            except ChainError as error:
                if error.kind == neurons.SUBNET_NOT_FOUND:
                    return None
                raise

        def new_subnet() -> dict[str, int]:
            default_tempo = int(self.query("/subnets/params")["default_tempo"])
            return params_to_json(subnets.Hyperparams(tempo=default_tempo))

        def deleting() -> commitments.Params:  # what bounds the deletions of a registration or a dissolve
            return commitments.Params(**self.query("/commitments/params"))

        return fees.compute_required_fee(params, messages, memo, shape_of, new_subnet, deleting)

    def send(self, key: PrivateKey, messages: list[Msg], fee: int | None = None, memo: str = "") -> TxOutcome:
        """Sign with the next nonce, submit, and wait for the block that includes it. The fee defaults to the
        one the chain requires (``required_fee``).

        Another sender with the same key (one validator hotkey on several subnets, each its own process) may take
        the nonce first: the chain then refuses this transaction before running any of it (``nonce_replayed``),
        so it is signed again with the nonce after the other's, once that one is committed, at most
        ``NONCE_RETRIES`` times."""
        if fee is None:
            fee = self.required_fee(messages, memo)
        address = format_address(key.address)
        retries = 0
        while True:
            nonce = self.nonce(address) + 1
            try:
                outcome = self.broadcast_commit(self.sign(key, messages, fee, memo, nonce=nonce))
                # a network's nodes may each admit one of two such transactions; the block then refuses one
                replayed = (outcome.codespace, outcome.code) == (NONCE_REPLAYED.module, NONCE_REPLAYED.code)
                if not replayed or retries == NONCE_RETRIES:
                    return outcome
            except ChainError as error:
                if error.kind != NONCE_REPLAYED or retries == NONCE_RETRIES:
                    raise
            retries += 1
            log.info("Nonce %d of %s was taken by another transaction of the same key; signing again after it.",
                     nonce, address)
            self._wait_for_nonce(address, nonce)

    def _wait_for_nonce(self, address: str, used: int, timeout_s: float = 30.0) -> None:
        """Until the transaction that took nonce ``used`` is committed (the account's nonce reaches it)."""
        deadline = time.monotonic() + timeout_s
        while self.nonce(address) < used:
            if time.monotonic() > deadline:
                raise TX_TIMEOUT(f"the transaction that took nonce {used} of {address} was not committed within "
                                 f"{timeout_s:.0f} s")
            time.sleep(0.05)

    def execute(self, key: PrivateKey, messages: list[Msg], memo: str = "") -> TxOutcome:
        """``send`` at the fee the chain requires, raising the chain's error if the transaction failed."""
        outcome = self.send(key, messages, None, memo)
        raise_for_code(outcome.code, outcome.codespace, outcome.log)
        return outcome
