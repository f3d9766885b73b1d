"""ed25519 keys (libsodium through PyNaCl) and addresses.

An address is the first 20 bytes of SHA-256 over the public key, the same derivation CometBFT uses for
validator addresses, so an authority's account and its consensus key share one address. Humans see it in
bech32m with the prefix ``gm`` (``gm1...``): the checksum catches typos before a transfer leaves the wallet.
"""

from __future__ import annotations

import functools
import hashlib

import nacl.bindings
import nacl.exceptions

from gridmint.chain.errors import INVALID_ADDRESS

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
ADDRESS_BYTES = 20
ADDRESS_PREFIX = "gm"


class PrivateKey:
    """An ed25519 signing key made from a 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an ed25519 seed is {SEED_BYTES} bytes, got {len(seed)}")
        public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        self.seed = seed
        self.public_key: bytes = public
        self._secret: bytes = secret

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        signed: bytes = nacl.bindings.crypto_sign(message, self._secret)
        return signed[:SIGNATURE_BYTES]


def generate_seed() -> bytes:
    return bytes(nacl.bindings.randombytes(SEED_BYTES))


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=65_536)  # signed requests name the same few callers over and over
def address_of(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()[:ADDRESS_BYTES]


# --- bech32m (BIP-350) -------------------------------------------------------------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3


def _polymod(values: list[int]) -> int:
    generators = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(generators):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _expand_prefix(prefix: str) -> list[int]:
    return [ord(c) >> 5 for c in prefix] + [0] + [ord(c) & 31 for c in prefix]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    accumulator = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            out.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or ((accumulator << (to_bits - bits)) & max_value):
        return None
    return out


@functools.lru_cache(maxsize=65_536)  # events name the same accounts over and over; bech32 is slow in Python
def format_address(raw: bytes) -> str:
    """20 raw bytes -> ``gm1...``."""
    if len(raw) != ADDRESS_BYTES:
        raise ValueError(f"an address is {ADDRESS_BYTES} bytes, got {len(raw)}")
    data = _convert_bits(raw, 8, 5, pad=True)
    if data is None:  # unreachable: padded conversion always succeeds
        raise ValueError("address conversion failed")
    values = _expand_prefix(ADDRESS_PREFIX) + data
    polymod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONST
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return ADDRESS_PREFIX + "1" + "".join(_CHARSET[d] for d in data + checksum)


def parse_address(text: str) -> bytes:
    """``gm1...`` -> 20 raw bytes; a wrong prefix, character, length or checksum raises ``tx/invalid_address``."""
    if not isinstance(text, str) or len(text) > 90:
        raise INVALID_ADDRESS(f"'{text}' is not an address; expected the form gm1...")
    if text.lower() != text and text.upper() != text:
        raise INVALID_ADDRESS(f"'{text}' mixes upper and lower case; an address uses one case")
    lowered = text.lower()
    prefix, sep, rest = lowered.rpartition("1")
    if not sep or prefix != ADDRESS_PREFIX or len(rest) < 7:
        raise INVALID_ADDRESS(f"'{text}' is not an address; expected the form {ADDRESS_PREFIX}1...")
    if any(c not in _CHARSET for c in rest):
        raise INVALID_ADDRESS(f"'{text}' contains characters that an address never has")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod(_expand_prefix(prefix) + values) != _BECH32M_CONST:
        raise INVALID_ADDRESS(f"'{text}' has a wrong checksum: check it for a typo")
    raw = _convert_bits(values[:-6], 5, 8, pad=False)
    if raw is None or len(raw) != ADDRESS_BYTES:
        raise INVALID_ADDRESS(f"'{text}' does not hold a {ADDRESS_BYTES}-byte address")
    return bytes(raw)
