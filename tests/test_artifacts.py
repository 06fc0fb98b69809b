"""The committed artifacts are exactly what the sources compile to."""

from __future__ import annotations

import re
import shutil

import pytest
from cli_helpers import invoke

from smartsla import artifacts, compiler


@pytest.mark.node
def test_committed_artifacts_match_a_fresh_compilation() -> None:
    """`smartsla compile --check`: one fresh compilation (a few CPU-seconds of solcjs) checks both the
    command and the committed artifacts, every one of them both ways (differing, missing, extra)."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the compiler front end needs it")
    code, out, err = invoke("compile", "--check")
    assert code == 0, f"committed artifacts differ from contracts/: run `smartsla compile`\n{out}{err}"
    assert "up to date" in out, out
    listed = re.search(r"(\d+) contracts match the sources \(([^)]*)\)", " ".join(out.split()))
    assert listed, out
    assert listed.group(2).split(", ") == artifacts.names() and int(listed.group(1)) == len(artifacts.names())


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
