"""The solc that Brownie's py-solc-x runs: the project's front end (scripts/solc) with our metadata setting.

scripts/brownie-setup.sh registers this script (through a small wrapper named ``solc-v0.8.30``
in the Brownie environment's py-solc-x folder) as solc 0.8.30. Everything goes to
``node scripts/solc`` unchanged except one thing: Brownie 1.22 has no setting for
``metadata.bytecodeHash``, and our pipeline (smartsla/compiler.py) compiles with
``bytecodeHash: none`` so that the bytecode depends on the code only. Without it Brownie's
bytecode would carry an IPFS hash, and AgreementFactory (which embeds Agreement's creation
code) would differ in more than the trailing metadata. So in ``--standard-json`` mode this
script adds ``"metadata": {"bytecodeHash": "none"}`` to the input's settings when the input
does not say otherwise. Standard library only: it runs under any Python 3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

FRONT_END = Path(__file__).resolve().parent / "solc"


def main(argv: list[str]) -> int:
    node = shutil.which("node")
    if node is None:
        print("brownie_solc: `node` is not on PATH (the solc front end needs Node.js)", file=sys.stderr)
        return 1
    cmd = [node, str(FRONT_END), *argv]
    if "--standard-json" not in argv:
        os.execv(node, cmd)  # --version and the like: nothing to change
    raw = sys.stdin.read()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None  # let the compiler report the malformed input in its own words
    if isinstance(data, dict) and isinstance(data.get("settings", {}), dict):
        settings = data.setdefault("settings", {})
        metadata = settings.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata.setdefault("bytecodeHash", "none")
        raw = json.dumps(data)
    proc = subprocess.run(cmd, input=raw.encode(), check=False)  # stdout and stderr pass through
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
