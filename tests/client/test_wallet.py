from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from mnemonic import Mnemonic

from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.client import keyfile
from gridmint.client.wallet import (
    create_wallet,
    dev_account,
    key_from_mnemonic,
    list_wallets,
    master_key,
    open_wallet,
)

FAST_KDF = {"opslimit": 1, "memlimit": 8192 * 8}  # the same code path with a cheap cost, for speed


def test_create_encrypts_the_coldkey_and_restores_from_the_mnemonic(tmp_path: Path) -> None:
    wallet, words = create_wallet("alice", "correct horse", tmp_path, **FAST_KDF)
    assert len(words.split()) == 24
    document = json.loads(wallet.coldkey_path.read_text())
    assert "seed" not in document and document["crypto"]["kdf"] == "argon2id"
    key = wallet.coldkey("correct horse")
    assert key.public_key == key_from_mnemonic(words).public_key
    restored, _ = create_wallet("again", "other password", tmp_path, words=words, hotkey=None, **FAST_KDF)
    assert restored.address == wallet.address
    assert [w.name for w in list_wallets(tmp_path)] == ["again", "alice"]
    assert wallet.hotkeys() == ["default"]


def test_wrong_password_is_a_clear_error(tmp_path: Path) -> None:
    wallet, _ = create_wallet("alice", "right", tmp_path, **FAST_KDF)
    with pytest.raises(ChainError) as caught:
        wallet.coldkey("wrong")
    assert (caught.value.module, caught.value.kind.name) == ("wallet", "wrong_password")
    assert "wrong password" in caught.value.message
    assert wallet.coldkey("right").address  # nothing was damaged by the failed attempt


def test_files_are_private(tmp_path: Path) -> None:
    wallet, _ = create_wallet("alice", "pw", tmp_path, **FAST_KDF)
    for path in (wallet.coldkey_path, wallet.hotkey_path("default"), wallet.path / "coldkeypub.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(wallet.path.stat().st_mode) == 0o700


def test_each_file_has_its_own_salt(tmp_path: Path) -> None:
    one, _ = create_wallet("one", "same", tmp_path, **FAST_KDF)
    two, _ = create_wallet("two", "same", tmp_path, **FAST_KDF)
    salts = {json.loads(w.coldkey_path.read_text())["crypto"]["salt"] for w in (one, two)}
    assert len(salts) == 2


def test_a_tampered_keyfile_is_refused(tmp_path: Path) -> None:
    wallet, _ = create_wallet("alice", "pw", tmp_path, **FAST_KDF)
    document = json.loads(wallet.coldkey_path.read_text())
    ciphertext = bytearray(keyfile.base64.b64decode(document["crypto"]["ciphertext"]))
    ciphertext[-1] ^= 1
    document["crypto"]["ciphertext"] = keyfile.base64.b64encode(bytes(ciphertext)).decode()
    wallet.coldkey_path.write_text(json.dumps(document))
    with pytest.raises(ChainError) as caught:
        wallet.coldkey("pw")
    assert caught.value.kind.name == "wrong_password"


def test_hotkeys_plain_or_encrypted(tmp_path: Path) -> None:
    wallet, _ = create_wallet("alice", "pw", tmp_path, hotkey=None, **FAST_KDF)
    plain, _ = wallet.add_hotkey("miner")
    secret, _ = wallet.add_hotkey("validator", password="hot", **FAST_KDF)
    assert wallet.hotkey("miner").public_key == plain.public_key
    assert wallet.hotkey("validator", "hot").public_key == secret.public_key
    with pytest.raises(ChainError):
        wallet.hotkey("validator")
    with pytest.raises(ChainError) as caught:
        wallet.add_hotkey("miner")
    assert caught.value.kind.name == "exists"


@pytest.mark.parametrize("name", ["../escape", "", "a/b", "x" * 65, ".hidden"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ChainError) as caught:
        open_wallet(name, tmp_path)
    assert caught.value.kind.name == "bad_name"


def test_bad_mnemonic_and_missing_wallet(tmp_path: Path) -> None:
    with pytest.raises(ChainError) as caught:
        key_from_mnemonic("abandon " * 23 + "wrong")
    assert caught.value.kind.name == "bad_mnemonic"
    with pytest.raises(ChainError) as caught:
        open_wallet("ghost", tmp_path).coldkey("pw")
    assert caught.value.kind.name == "not_found"
    with pytest.raises(ChainError) as caught:
        create_wallet("empty", "", tmp_path)
    assert caught.value.kind.name == "empty_password"


def test_dev_accounts_are_stable() -> None:
    # Pinned: `make up` and the docs name these accounts, so a change to the derivation must show here.
    assert dev_account(0).address == "gm1ljc54wwacd4r35k2k2g5gtn3j7wcyam4eyzgwx"
    assert dev_account(1).address == "gm1wvqlp92ef5gcjvgd6e5v3j7300ltg3umtkqxv8"
    assert format_address(key_from_mnemonic(dev_account(1).mnemonic).address) == dev_account(1).address


def test_the_derivation_matches_the_published_vectors() -> None:
    """BIP-39's seed of the standard test phrase, and SLIP-0010's ed25519 test vector 1 (master key of seed
    000102…0f): each step of key_from_mnemonic against the standard's own answer."""
    words = " ".join(["abandon"] * 11 + ["about"])
    assert Mnemonic.to_seed(words).hex() == (
        "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1"
        "9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4")
    master = master_key(bytes.fromhex("000102030405060708090a0b0c0d0e0f"))
    assert master.seed.hex() == "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"
    assert master.public_key.hex() == "a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"
    assert key_from_mnemonic(words).seed == master_key(Mnemonic.to_seed(words)).seed
