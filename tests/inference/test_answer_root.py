"""The Merkle root over signed answers: every leaf has a proof, and no changed answer passes."""

from __future__ import annotations

import pytest

from gridmint.inference.validator.answer_root import SignedAnswer, compute_proof, compute_root, verify_proof


def answers(count: int) -> list[SignedAnswer]:
    return [SignedAnswer("1-0-ab", f"gm1miner{i}", "ab" * 32, "gm1validator", 1_000 + i, f"{i:064x}", f"{i:0128x}")
            for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33])
def test_every_answer_has_a_proof_against_the_root(count: int) -> None:
    leaves = [a.leaf() for a in answers(count)]
    root = compute_root(leaves)
    for index, leaf in enumerate(leaves):
        assert verify_proof(leaf, compute_proof(leaves, index), root)


def test_a_changed_answer_or_a_proof_for_another_place_fails() -> None:
    signed = answers(5)
    leaves = [a.leaf() for a in signed]
    root = compute_root(leaves)
    changed = SignedAnswer(**{**signed[2].__dict__, "body_sha256": "f" * 64})
    assert not verify_proof(changed.leaf(), compute_proof(leaves, 2), root)
    assert not verify_proof(leaves[2], compute_proof(leaves, 3), root)
    assert compute_root(leaves[:4]) != root  # dropping an answer changes the root
    assert compute_root([leaves[1], leaves[0], *leaves[2:]]) != root  # so does reordering
    assert compute_root([]) == bytes(32)
