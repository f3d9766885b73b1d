"""Wallets: a coldkey (holds funds; always encrypted) and hotkeys (operational; encryption optional).

Layout, under ``$GRIDMINT_WALLET_DIR`` or ``~/.gridmint/wallets``::

    <wallet>/coldkey            encrypted key file (0600)
    <wallet>/coldkeypub.json    the address and public key, readable without the password
    <wallet>/hotkeys/<name>     key files (0600), plain unless created with a password

Keys come from a 24-word BIP-39 mnemonic: the BIP-39 seed (PBKDF2-HMAC-SHA512) gives the ed25519 seed through
SLIP-10's master key derivation (HMAC-SHA512 with key "ed25519 seed"), so the words restore the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mnemonic import Mnemonic

from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.client import keyfile
from gridmint.client.errors import BAD_MNEMONIC, BAD_NAME, EMPTY_PASSWORD, WALLET_EXISTS, WALLET_NOT_FOUND

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_WORDS = Mnemonic("english")


def default_wallet_dir() -> Path:
    configured = os.environ.get("GRIDMINT_WALLET_DIR")
    return Path(configured) if configured else Path.home() / ".gridmint" / "wallets"


def new_mnemonic() -> str:
    return str(_WORDS.generate(strength=256))


def key_from_mnemonic(words: str) -> PrivateKey:
    normalised = " ".join(words.lower().split())
    if not _WORDS.check(normalised):
        raise BAD_MNEMONIC("the mnemonic is not a valid BIP-39 phrase: check the words and their order")
    return master_key(Mnemonic.to_seed(normalised))


def master_key(seed: bytes) -> PrivateKey:
    """SLIP-0010's ed25519 master key of a BIP-39 seed (what ed25519 wallets derive from the same words)."""
    return PrivateKey(hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()[:32])


def _check_name(name: str, what: str) -> str:
    if not NAME_PATTERN.match(name):
        raise BAD_NAME(f"{what} name '{name[:70]}' must be 1-64 letters, digits, '_', '.' or '-'")
    return name


@dataclass(frozen=True)
class Wallet:
    name: str
    root: Path

    @property
    def path(self) -> Path:
        return self.root / self.name

    @property
    def coldkey_path(self) -> Path:
        return self.path / "coldkey"

    def hotkey_path(self, hotkey: str) -> Path:
        return self.path / "hotkeys" / _check_name(hotkey, "hotkey")

    def exists(self) -> bool:
        return self.coldkey_path.exists()

    @property
    def address(self) -> str:
        try:
            return str(json.loads((self.path / "coldkeypub.json").read_text())["address"])
        except FileNotFoundError:
            raise WALLET_NOT_FOUND(f"no wallet '{self.name}' in {self.root}; see `gridmint wallet list`") from None

    def coldkey(self, password: str) -> PrivateKey:
        if not self.exists():
            raise WALLET_NOT_FOUND(f"no wallet '{self.name}' in {self.root}; see `gridmint wallet list`")
        return keyfile.load_key(self.coldkey_path, password)

    def hotkeys(self) -> list[str]:
        folder = self.path / "hotkeys"
        return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".tmp")) if folder.exists() else []

    def hotkey(self, hotkey: str, password: str | None = None) -> PrivateKey:
        path = self.hotkey_path(hotkey)
        if not path.exists():
            raise WALLET_NOT_FOUND(f"wallet '{self.name}' has no hotkey '{hotkey}'")
        return keyfile.load_key(path, password)

    def hotkey_address(self, hotkey: str) -> str:
        return str(keyfile.read_public(self.hotkey_path(hotkey))["address"])

    def add_hotkey(self, hotkey: str, words: str | None = None, password: str | None = None,
                   **kdf: int) -> tuple[PrivateKey, str]:
        path = self.hotkey_path(hotkey)
        if path.exists():
            raise WALLET_EXISTS(f"wallet '{self.name}' already has a hotkey '{hotkey}'")
        words = words or new_mnemonic()
        key = key_from_mnemonic(words)
        keyfile.save_key(path, key, password, **kdf)
        return key, words


def open_wallet(name: str, root: Path | None = None) -> Wallet:
    return Wallet(_check_name(name, "wallet"), root or default_wallet_dir())


def list_wallets(root: Path | None = None) -> list[Wallet]:
    root = root or default_wallet_dir()
    if not root.exists():
        return []
    return [Wallet(p.name, root) for p in sorted(root.iterdir()) if (p / "coldkey").exists()]


def create_wallet(name: str, password: str, root: Path | None = None, words: str | None = None,
                  hotkey: str | None = "default", **kdf: int) -> tuple[Wallet, str]:
    """Create (or, with ``words``, restore) a wallet; returns it and the coldkey's mnemonic."""
    if not password:
        raise EMPTY_PASSWORD("a coldkey needs a non-empty password")
    wallet = open_wallet(name, root)
    if wallet.exists():
        raise WALLET_EXISTS(f"wallet '{name}' already exists in {wallet.root}")
    words = words or new_mnemonic()
    key = key_from_mnemonic(words)
    wallet.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(wallet.path, 0o700)
    keyfile.save_key(wallet.coldkey_path, key, password, **kdf)
    keyfile.write_private_file(wallet.path / "coldkeypub.json", json.dumps(
        {"address": format_address(key.address), "public_key": key.public_key.hex()}, indent=2) + "\n")
    if hotkey:
        wallet.add_hotkey(hotkey)
    return wallet, words


DEV_ACCOUNT_BALANCE = 1_000_000 * 10**9


@dataclass(frozen=True)
class DevAccount:
    """A well-known dev account: its phrase is public, so anyone can spend it. Dev chains only."""

    name: str
    address: str
    mnemonic: str


def dev_account(index: int) -> DevAccount:
    words = str(_WORDS.to_mnemonic(hashlib.sha256(f"gridmint dev account {index}".encode()).digest()))
    return DevAccount(f"dev{index}", format_address(key_from_mnemonic(words).address), words)
