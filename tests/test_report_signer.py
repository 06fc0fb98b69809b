"""ReportSigner (the key's public half derived once) signs exactly what eth_account signs: the same
bytes, recovered to the same address, for keys given as hex or bytes."""

from __future__ import annotations

from eth_account import Account

from smartsla.reports import ReportSigner, recover_signer, sign_report, typed_data

AGREEMENT = "0x" + "11" * 20


def test_report_signer_matches_eth_account_byte_for_byte():
    for i in range(1, 25):
        key = (i * 0x1F3A5B7C9D).to_bytes(32, "big")
        expected = Account.from_key(key).sign_typed_data(
            full_message=typed_data(31337, AGREEMENT, i, [999_000 + i, 7], 900_000, b"\x02" * 32, 10_000 + i))
        for given in (key, "0x" + key.hex(), ReportSigner(key)):
            signed = sign_report(given, 31337, AGREEMENT, i, [999_000 + i, 7], 900_000, b"\x02" * 32, 10_000 + i)
            assert signed.signature == bytes(expected.signature)
            assert signed.signer == Account.from_key(key).address == recover_signer(signed)
