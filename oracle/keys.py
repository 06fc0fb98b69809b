"""The oracle's signing key: from an environment variable or an encrypted keystore file.

The key is returned as an eth-account LocalAccount and never logged or put in an exception.
"""

from __future__ import annotations

import os

from eth_account import Account
from eth_account.signers.local import LocalAccount

from smartsla import keystore

from .config import ConfigError, KeySource


def load_key(source: KeySource) -> LocalAccount:
    if source.env is not None:
        raw = os.environ.get(source.env)
        if not raw:
            raise ConfigError(f"key.env: environment variable {source.env} is not set")
        try:
            return Account.from_key(raw.strip())
        except Exception:  # do not chain: the message of a key parser may quote the key
            raise ConfigError(f"key.env: {source.env} does not hold a valid private key") from None
    assert source.keystore is not None and source.password_env is not None
    password = os.environ.get(source.password_env)
    if password is None:
        raise ConfigError(f"key.password_env: environment variable {source.password_env} is not set")
    try:  # the key file format, its checks and wording: smartsla.keystore, shared with the CLI
        return keystore.load(source.keystore, password)
    except keystore.KeystoreError as exc:
        raise ConfigError(f"key.keystore: {exc} (password from {source.password_env})") from None
