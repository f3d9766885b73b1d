"""Key files: an ed25519 seed, optionally encrypted at rest with a password.

Encryption: Argon2id (memory-hard; a random 16-byte salt per file) derives a 32-byte key from the password, and
XSalsa20-Poly1305 (libsodium's secretbox, authenticated) seals the seed. A wrong password fails authentication,
which is reported as ``wallet/wrong_password``; a changed byte in the file fails the same way. Files are written
with mode 0600 through a temporary file and a rename, so a crash never leaves half a key.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.client.errors import BAD_KEYFILE, WRONG_PASSWORD

KEYFILE_VERSION = 1
# Argon2id cost: libsodium's "interactive" limits (64 MiB, 2 passes) unless overridden for tests or paranoia.
DEFAULT_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _derive(password: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    key: bytes = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, password.encode(), salt,
                                          opslimit=opslimit, memlimit=memlimit)
    return key


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def save_key(path: Path, key: PrivateKey, password: str | None, opslimit: int = DEFAULT_OPSLIMIT,
             memlimit: int = DEFAULT_MEMLIMIT) -> None:
    document: dict[str, Any] = {
        "version": KEYFILE_VERSION,
        "address": format_address(key.address),
        "public_key": _b64(key.public_key),
    }
    if password is None:
        document["seed"] = _b64(key.seed)
    else:
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        box = nacl.secret.SecretBox(_derive(password, salt, opslimit, memlimit))
        document["crypto"] = {
            "kdf": "argon2id", "opslimit": opslimit, "memlimit": memlimit, "salt": _b64(salt),
            "cipher": "xsalsa20-poly1305", "ciphertext": _b64(bytes(box.encrypt(key.seed))),
        }
    write_private_file(path, json.dumps(document, indent=2) + "\n")


def read_public(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BAD_KEYFILE(f"cannot read key file {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != KEYFILE_VERSION:
        raise BAD_KEYFILE(f"{path} is not a GridMint key file of version {KEYFILE_VERSION}")
    return document


def load_key(path: Path, password: str | None) -> PrivateKey:
    """The key in ``path``; encrypted files need the password they were saved with."""
    document = read_public(path)
    try:
        if "crypto" not in document:
            key = PrivateKey(base64.b64decode(document["seed"]))
        else:
            crypto = document["crypto"]
            if password is None:
                raise WRONG_PASSWORD(f"{path.name} is encrypted: a password is needed")
            if crypto.get("kdf") != "argon2id" or crypto.get("cipher") != "xsalsa20-poly1305":
                raise BAD_KEYFILE(f"{path} uses an unknown cipher")
            opslimit, memlimit = int(crypto["opslimit"]), int(crypto["memlimit"])
            if not 1 <= opslimit <= 64 or not 8192 <= memlimit <= 4 * 1024**3:
                raise BAD_KEYFILE(f"{path} asks for key derivation limits outside the accepted range")
            box = nacl.secret.SecretBox(_derive(password, base64.b64decode(crypto["salt"]), opslimit, memlimit))
            try:
                seed = box.decrypt(base64.b64decode(crypto["ciphertext"]))
            except nacl.exceptions.CryptoError:
                raise WRONG_PASSWORD(f"wrong password for {path.name}: decryption failed; try again") from None
            key = PrivateKey(bytes(seed))
    except (KeyError, ValueError, TypeError) as exc:
        raise BAD_KEYFILE(f"{path} is damaged: {exc}") from None
    if format_address(key.address) != document.get("address"):
        raise BAD_KEYFILE(f"{path}: the key does not match the address the file names")
    return key
