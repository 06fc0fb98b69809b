"""Where the factory lives on each chain: one record shared by the CLI, the oracle and scripts.

`deployments.json` in the current directory (or the file $SMARTSLA_DEPLOYMENTS names) maps a
chain id to the factory address. The current directory, not the package's folder: an installed
package lives in site-packages, which is neither the user's nor writable. In a checkout, run the
commands from its root (as the README does) and they all share the root's deployments.json.
The embedded chain starts empty in each process, so it is never recorded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from web3 import Web3

DEFAULT_FILE = "deployments.json"
# The SettlementBatch `smartsla deploy` records beside the factories (its contract name, as they are).
SETTLEMENT_BATCH = "SettlementBatch"


def deployments_path() -> Path:
    """$SMARTSLA_DEPLOYMENTS, else deployments.json in the current directory (absolute, for messages)."""
    return Path(os.environ.get("SMARTSLA_DEPLOYMENTS") or Path.cwd() / DEFAULT_FILE)


def load_all(path: Path | None = None) -> dict[str, dict[str, str]]:
    path = path or deployments_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold an object keyed by chain id")
    return data


def record(chain_id: int, name: str, address: str, path: Path | None = None) -> Path:
    """Record `name` (e.g. "AgreementFactory") at `address` for `chain_id`; atomic rewrite."""
    path = path or deployments_path()
    data = load_all(path)
    data.setdefault(str(chain_id), {})[name] = Web3.to_checksum_address(address)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def lookup(chain_id: int, name: str = "AgreementFactory", path: Path | None = None) -> str | None:
    return load_all(path).get(str(chain_id), {}).get(name)
