"""The busy subnet that state_growth.py and state_sync.py run their chains with, built one way for both.

One subnet of ``uids`` UIDs, the first ``validators`` of them staked validators and the rest miners, with
commit-reveal and the weights rate limit off; after an epoch has handed out the validator permits, each validator
sets weights on every miner once per epoch (validator i in the blocks where height mod tempo is i mod tempo), its
scores a fixed quality per miner plus fresh noise each time, as a validator's measurements move. Keys are derived
from a label, so each bench has its own accounts and every run the same ones; the scores come from a seeded
generator, so a run's blocks are the same every time.

A chain here is whatever runs the blocks (two Apps side by side, an App behind its ABCI server): it signs a
transaction for a key at the fee the chain requires (``sign_next``), finalizes and commits a block of transactions,
and says how many of a list fit in its next block.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import numpy as np

from gridmint.chain import fees
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.genesis import make_genesis_document
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.state import BlockState
from gridmint.chain.store import Store
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.tx import Msg, TxBody, sign_tx
from gridmint.chain.weights import MsgSetWeights

CHAIN_ID = "gridmint-bench"
MINT = 10**9
FEE = 10_000
NETUID = 1
REGISTRATIONS_PER_TX = 4  # a registration on a 1,024-UID subnet is ~84,000 work units (chain/fees.py)
STAKES_PER_TX = 16


class Chain(Protocol):
    @property
    def height(self) -> int: ...  # of the last committed block

    def tx(self, signer: PrivateKey, *messages: Msg) -> bytes: ...

    def block(self, txs: list[bytes]) -> None: ...

    def fitting(self, txs: list[bytes]) -> int: ...


def sign_next(store: Store, nonces: dict[bytes, int], signer: PrivateKey, *messages: Msg) -> bytes:
    """``signer``'s next transaction, at the fee the chain requires (chain/fees.py) priced on the committed state of
    ``store``, as a client would price it."""
    nonces[signer.address] = nonce = nonces.get(signer.address, 0) + 1
    required = fees.get_tx_cost(BlockState(store), TxBody(CHAIN_ID, signer.public_key, nonce, 0, messages)).fee
    return sign_tx(TxBody(CHAIN_ID, signer.public_key, nonce, max(FEE, required), messages), signer)


def in_blocks(chain: Chain, txs: list[bytes]) -> None:
    """``txs`` in as few blocks as the chain's work budget allows, in order (as a proposer fills them)."""
    while txs:
        fitting = chain.fitting(txs)
        if fitting == 0:
            raise SystemExit(f"block {chain.height + 1}: a transaction is larger than a whole block")
        chain.block(txs[:fitting])
        txs = txs[fitting:]


class BusySubnet:
    def __init__(self, label: str, uids: int, validators: int, tempo: int, seed: int) -> None:
        self.label = label.encode()
        self.owner, self.authority = self.key("owner"), self.key("authority")
        self.hotkeys = [self.key(f"hotkey {i}") for i in range(uids)]
        self.validators = self.hotkeys[:validators]
        self.tempo = tempo
        self.rng = np.random.default_rng(seed)
        self.miner_uids = list(range(validators, uids))
        self.quality = self.rng.integers(1_000, 60_000, len(self.miner_uids))

    def key(self, name: str) -> PrivateKey:
        return PrivateKey(hashlib.sha256(self.label + b" " + name.encode()).digest())

    def genesis_document(self) -> dict[str, Any]:
        """The owner's and validators' funds, a cheap subnet lock, and transactions large enough for a whole
        subnet's weights."""
        balances = [(format_address(self.owner.address), 10**9 * MINT)] + [
            (format_address(k.address), 10**6 * MINT) for k in self.validators]
        document = make_genesis_document(CHAIN_ID, "2026-01-01T00:00:00Z", [("bench", self.authority.public_key)],
                                         balances, min_tx_fee=FEE)
        document["app_state"]["subnets"] = {"params": {"min_lock": MINT, "default_tempo": 360}}
        document["app_state"]["tx"]["max_tx_bytes"] = 32_768
        return document

    def set_up(self, chain: Chain) -> None:
        """The subnet created and filled, the validators staked, and one epoch run to hand out their permits."""
        params = {"max_uids": len(self.hotkeys), "max_validators": len(self.validators), "tempo": self.tempo,
                  "commit_reveal": 0, "weights_rate_limit": 0, "immunity_period": 0, "burn_initial": MINT // 1_000,
                  "burn_max": MINT // 100}
        chain.block([chain.tx(self.owner, MsgCreateSubnet("text-generation", "busy subnet"))])
        chain.block([chain.tx(self.owner, *(MsgSetHyperparam(NETUID, name, value) for name, value in params.items()))])
        registrations = [MsgRegister(NETUID, k.address, 0) for k in self.hotkeys]
        in_blocks(chain, [chain.tx(self.owner, *registrations[i:i + REGISTRATIONS_PER_TX])
                          for i in range(0, len(registrations), REGISTRATIONS_PER_TX)])
        stakes = [MsgAddStake(NETUID, k.address, (1_000 + 10 * i) * MINT) for i, k in enumerate(self.validators)]
        in_blocks(chain, [chain.tx(self.owner, *stakes[i:i + STAKES_PER_TX])
                          for i in range(0, len(stakes), STAKES_PER_TX)])
        for _ in range(self.tempo):
            chain.block([])

    def weights_block(self, chain: Chain) -> None:
        """The next block: the weights of the validators whose turn it is."""
        height = chain.height + 1
        txs = []
        for index, validator in enumerate(self.validators):
            if index % self.tempo == height % self.tempo:
                scores = np.clip(self.quality + self.rng.integers(-2_000, 2_000, len(self.miner_uids)), 1, 65_535)
                txs.append(chain.tx(validator, MsgSetWeights(NETUID, self.miner_uids, [int(s) for s in scores])))
        chain.block(txs)
