"""The oracle's key: from an encrypted keystore or an environment variable, never echoed."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from oracle.config import ConfigError, KeySource
from oracle.keys import load_key


def test_keystore_with_password_from_the_environment(tmp_path, monkeypatch):
    account = Account.create()
    path = tmp_path / "oracle-key.json"
    path.write_text(json.dumps(Account.encrypt(account.key, "correct horse", iterations=2)))
    monkeypatch.setenv("ORACLE_PASSWORD", "correct horse")
    assert load_key(KeySource(keystore=path, password_env="ORACLE_PASSWORD")).address == account.address
    monkeypatch.setenv("ORACLE_PASSWORD", "wrong")
    with pytest.raises(ConfigError, match="wrong password") as err:
        load_key(KeySource(keystore=path, password_env="ORACLE_PASSWORD"))
    assert account.key.hex()[2:12] not in str(err.value)


def test_key_from_the_environment_is_never_echoed(monkeypatch):
    monkeypatch.setenv("ORACLE_KEY", "0x" + "ab" * 31 + "zz")
    with pytest.raises(ConfigError) as err:
        load_key(KeySource(env="ORACLE_KEY"))
    assert "abab" not in str(err.value) and err.value.__cause__ is None
    monkeypatch.delenv("ORACLE_KEY")
    with pytest.raises(ConfigError, match="ORACLE_KEY is not set"):
        load_key(KeySource(env="ORACLE_KEY"))


def test_exactly_one_key_source():
    with pytest.raises(ValueError, match="either env or keystore"):
        KeySource()
