"""The committed artifacts are exactly what the sources compile to."""

from __future__ import annotations

import shutil

import pytest

from smartsla import artifacts, compiler


@pytest.mark.node
def test_committed_artifacts_match_a_fresh_compilation() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the compiler front end needs it")
    fresh = compiler.compile_contracts()
    assert sorted(fresh) == artifacts.names()
    stale = [name for name, art in fresh.items()
             if compiler.artifact_text(art) != (artifacts.ARTIFACTS_DIR / f"{name}.json").read_text()]
    assert not stale, f"committed artifacts differ from contracts/ for {stale}: run `smartsla compile`"


@pytest.mark.node
def test_front_end_answers_version_like_native_solc() -> None:
    import subprocess

    out = subprocess.run([str(compiler.FRONT_END), "--version"], capture_output=True, text=True, check=True).stdout
    assert "Version: 0.8." in out and out.strip().endswith(".Linux.g++")


@pytest.mark.node
def test_front_end_reports_errors_as_json(tmp_path) -> None:
    (tmp_path / "Broken.sol").write_text("pragma solidity ^0.8.24; contract Broken { function f( }")
    with pytest.raises(RuntimeError, match="ParserError"):
        compiler.compile_contracts(tmp_path)


def test_artifacts_are_for_shanghai() -> None:
    # PUSH0 exists since shanghai; what matters is that we never emit cancun-only opcodes
    # (TSTORE 0x5d / TLOAD 0x5c / MCOPY 0x5e) that Ganache 7.9 cannot run. The compiler setting
    # is the authority, recorded in each artifact.
    for name in artifacts.names():
        assert artifacts.load(name)["compiler"]["evmVersion"] == "shanghai"
