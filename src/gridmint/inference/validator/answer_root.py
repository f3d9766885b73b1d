"""The Merkle root a validator commits over the signed answers it received, and the proofs that an answer is in it.

A leaf is one signed answer: SHA-256 over ``0x00 || codec([domain, challenge id, miner hotkey, miner public key,
validator hotkey, request nonce, body SHA-256, miner signature])`` — with the answer's body, everything a third
party needs to check that the miner sent that body to that validator for that request. Inner nodes are
SHA-256 over ``0x01 || left || right`` (the prefixes keep a leaf from passing for a node); a level of odd length
carries its last node up unpaired. The validator commits the root with ``commitments/commit`` before the future it
asked about exists, so it cannot add, drop or swap an answer once outcomes are known, and a miner holding its
answer and a proof can show that the answer was counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gridmint.chain import codec
from gridmint.client.signing import BODY, SIGNATURE, SIGNER

LEAF_DOMAIN = "gridmint/prediction-answer/v1"
LEAF, NODE = b"\x00", b"\x01"


@dataclass(frozen=True)
class SignedAnswer:
    challenge_id: str
    miner: str  # gm1 hotkey address of the miner that signed
    miner_key: str  # hex ed25519 public key of that hotkey (its address is derived from it)
    validator: str  # gm1 hotkey address of the caller
    nonce: int  # the request's nonce, which the miner's signature covers
    body_sha256: str  # hex, as the answer headers carry it
    signature: str  # hex ed25519 signature of the miner

    def leaf(self) -> bytes:
        encoded = codec.encode([LEAF_DOMAIN, self.challenge_id, self.miner, self.miner_key, self.validator,
                                self.nonce, self.body_sha256, self.signature])
        return hashlib.sha256(LEAF + encoded).digest()


def answer_headers(answer: SignedAnswer) -> dict[str, str]:
    """The answer headers ``client.signing.verify_answer`` checks, rebuilt from a committed answer."""
    return {SIGNER: answer.miner_key, BODY: answer.body_sha256, SIGNATURE: answer.signature}


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE + left + right).digest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves]
    while len(levels[-1]) > 1:
        level = levels[-1]
        parents = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])
        levels.append(parents)
    return levels


def compute_root(leaves: list[bytes]) -> bytes:
    """The root over ``leaves`` in order; 32 zero bytes for none."""
    if not leaves:
        return bytes(32)
    return _levels(leaves)[-1][0]


def compute_proof(leaves: list[bytes], index: int) -> list[tuple[str, bytes]]:
    """The siblings from leaf ``index`` up, each with its side ("left" or "right" of the path)."""
    proof = []
    for level in _levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(("left" if sibling < index else "right", level[sibling]))
        index //= 2
    return proof


def verify_proof(leaf: bytes, proof: list[tuple[str, bytes]], root: bytes) -> bool:
    node = leaf
    for side, sibling in proof:
        node = _node(sibling, node) if side == "left" else _node(node, sibling)
    return node == root
