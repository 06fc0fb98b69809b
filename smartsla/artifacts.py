"""Compiled contracts shipped inside the package (written by `smartsla compile`)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


@cache
def load(name: str) -> dict[str, Any]:
    """The artifact of contract `name`: ``abi``, ``bytecode``, ``deployedBytecode``."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no compiled artifact for {name!r} in {ARTIFACTS_DIR}; run `smartsla compile`")
    return json.loads(path.read_text())


def names() -> list[str]:
    """Names of every shipped artifact."""
    return sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json"))


def all_abis() -> list[list[dict[str, Any]]]:
    """Every shipped ABI (used to decode custom errors whatever contract raised them)."""
    return [load(n)["abi"] for n in names()]
