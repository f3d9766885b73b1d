"""Random and mutated transactions for fuzzing: bit flips, truncations, insertions, wrong field types, huge
claimed lengths, and random bytes. None of them is a valid transaction for the test chain's state."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

from gridmint.chain import codec
from gridmint.chain.bank import MsgSend
from tests.support.chain import CHAIN_ID, FEE, MINT, key, signed

ALICE, BOB = key("alice"), key("bob")
WRONG_VALUES: list[object] = [None, True, -1, 2**64, 2**70, "text", b"", b"\x00" * 33, [], {"a": 1}, [[1]], "x" * 300]


def _valid(rng: random.Random) -> bytes:
    # Nonce 1 is already spent on the fuzzed chain, so even an unchanged copy is refused.
    return signed(ALICE, 1, MsgSend(BOB.address, rng.randrange(1, 10 * MINT)), memo=rng.choice(("", "memo")))


def _wrong_types(rng: random.Random) -> bytes:
    # Nonce 9 is ahead of the chain: should a replacement happen to be well typed, the nonce still refuses it.
    fields: list[object] = [1, CHAIN_ID, ALICE.public_key, 9, FEE, [["bank/send", BOB.address, MINT]], ""]
    position = rng.randrange(len(fields))
    fields[position] = rng.choice(WRONG_VALUES)
    if rng.random() < 0.5:  # or break a message field instead
        fields[position] = [1, CHAIN_ID, ALICE.public_key, 9, FEE][position] if position < 5 else fields[position]
        fields[5] = [["bank/send", rng.choice(WRONG_VALUES), rng.choice(WRONG_VALUES)]]
    if rng.random() < 0.2:
        fields.append(rng.choice(WRONG_VALUES))
    body = codec.encode(fields)
    return codec.encode([body, ALICE.sign(body)])


def _huge_length(rng: random.Random) -> bytes:
    claim = rng.choice((0xFFFFFFFF, 0x7FFFFFFF, 2**20))
    header = rng.choice((b"\xc6", b"\xdb", b"\xdd", b"\xdf"))  # bin32, str32, array32, map32
    return rng.choice((b"", b"\x92")) + header + struct.pack(">I", claim) + rng.randbytes(rng.randrange(0, 16))


def _mutated(rng: random.Random) -> bytes:
    raw = bytearray(_valid(rng))
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(raw))
            raw[position] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del raw[rng.randrange(len(raw)):]
    elif kind == 2:
        position = rng.randrange(len(raw))
        raw[position:position] = rng.randbytes(rng.randrange(1, 8))
    else:
        start = rng.randrange(len(raw))
        del raw[start:start + rng.randrange(1, 10)]
    return bytes(raw)


def fuzz_cases(count: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    makers = (_mutated, _mutated, _mutated, _wrong_types, _huge_length, lambda r: r.randbytes(r.randrange(0, 300)))
    for _ in range(count):
        yield rng.choice(makers)(rng)
