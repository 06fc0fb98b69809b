"""Encrypted key files (Ethereum keystore v3, as geth and wallets write them) for the CLI.

A party signs its own transactions (withdraw, terminate) from a key file encrypted with a
password (`eth_account.Account.encrypt`, scrypt by default); the key is decrypted in memory
only for the command that needs it. Files are created with mode 0600 and never overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from .errors import SmartSLAError

PASSWORD_ENV = "SMARTSLA_KEYSTORE_PASSWORD"
MIN_PASSWORD_LENGTH = 8


class KeystoreError(SmartSLAError):
    """A key file that cannot be written, read or decrypted."""


def _normalise_key(private_key: str | bytes) -> bytes:
    if isinstance(private_key, bytes):
        raw = private_key
    else:
        text = private_key.strip().removeprefix("0x").removeprefix("0X")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise KeystoreError("the private key is not hexadecimal") from None
    if len(raw) != 32:
        raise KeystoreError(f"a private key is 32 bytes (64 hex digits), this one has {len(raw)} bytes")
    return raw


def create(path: str | Path, password: str, private_key: str | bytes | None = None, *,
           kdf: Literal["pbkdf2", "scrypt"] = "scrypt", iterations: int | None = None) -> str:
    """Write a new key file at `path` (a fresh key, or `private_key`); returns its address.
    Refuses to overwrite an existing file."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise KeystoreError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    key = _normalise_key(private_key) if private_key is not None else Account.create().key
    try:
        account = Account.from_key(key)
    except Exception:  # never echo anything about the key
        raise KeystoreError("not a valid secp256k1 private key") from None
    encrypted = Account.encrypt(key, password, kdf=kdf, iterations=iterations)
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{path} exists: refusing to overwrite a key file") from None
    except OSError as exc:
        raise KeystoreError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        json.dump(encrypted, fh)
        fh.write("\n")
    return account.address


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeystoreError(f"no key file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"{path} is not a keystore JSON file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or "crypto" not in data and "Crypto" not in data:
        raise KeystoreError(f"{path} is not an Ethereum keystore file (no 'crypto' section)")
    return data


def address_of(path: str | Path) -> str | None:
    """The address written in the key file (unencrypted), when it has one."""
    address = _read(path).get("address")
    if isinstance(address, str) and Web3.is_address(address if address.startswith("0x") else "0x" + address):
        return Web3.to_checksum_address(address if address.startswith("0x") else "0x" + address)
    return None


def load(path: str | Path, password: str) -> LocalAccount:
    """Decrypt the key file; KeystoreError on a wrong password."""
    data = _read(path)
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise KeystoreError(f"wrong password for {path} (or a damaged key file)") from None
    return Account.from_key(key)
