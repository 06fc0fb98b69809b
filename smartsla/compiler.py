"""Compile contracts/ with the project's solc front end and manage the committed artifacts.

No native solc can be downloaded on our machines, so ``scripts/solc`` (a Node front end over the
npm ``solc`` package) stands in for the binary; py-solc-x drives it through standard JSON exactly
as it would drive a native solc. Running the product needs none of this: the compiled ABI and
bytecode are committed under ``smartsla/artifacts`` and loaded by :mod:`smartsla.artifacts`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
FRONT_END = PROJECT_ROOT / "scripts" / "solc"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"

# One EVM version for every chain we run on: Ganache 7.9 stops at shanghai.
EVM_VERSION = "shanghai"
OPTIMIZER_RUNS = 200

# Contracts whose artifacts ship with the package (test helpers included: the demo and tests
# use the test token).
SHIPPED_CONTRACTS = ("Agreement", "AgreementFactory", "CorporateAgreement", "CorporateAgreementFactory",
                     "TestToken", "FeeOnTransferToken",
                     "SettlementBatch")
# Standard interfaces whose ABI the Python side uses for any token an agreement names (balanceOf,
# decimals, symbol, approve): OpenZeppelin's own, compiled from node_modules, shipped ABI-only, so
# no test contract's ABI stands in for every ERC-20.
SHIPPED_INTERFACES = {"IERC20Metadata": "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol"}


class CompilerUnavailable(RuntimeError):
    """The Node front end or the npm packages it needs are missing (run `npm ci`)."""


def standard_input(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """Standard-JSON input for every .sol file under contracts/, keyed by project-relative path."""
    sources = {
        path.relative_to(contracts_dir.parent).as_posix(): {"content": path.read_text()}
        for path in sorted(contracts_dir.rglob("*.sol"))
    }
    for source in SHIPPED_INTERFACES.values():
        sources[source] = {"content": (PROJECT_ROOT / "node_modules" / source).read_text()}
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            # No metadata hash: the bytecode then depends on the code, not on file paths, so
            # Brownie, Forge and our pipeline produce the same bytes.
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "devdoc", "userdoc"],
                      "": ["ast"]}
            },
        },
    }


def compile_contracts(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    """Compile and return ``{contract name: {"abi", "bytecode", "deployedBytecode", "source"}}``."""
    import solcx  # imported here: only compiling needs it
    from solcx.exceptions import SolcError

    if not (PROJECT_ROOT / "node_modules" / "solc").is_dir():
        raise CompilerUnavailable("node_modules/solc is missing: run `npm ci` in the project root")
    try:
        output = solcx.compile_standard(
            standard_input(contracts_dir),
            solc_binary=FRONT_END,
            base_path=str(PROJECT_ROOT),
            allow_paths=[str(PROJECT_ROOT)],
        )
    except SolcError as exc:  # py-solc-x raises on any error-severity message
        # Its message ends with the command's whole stdout (megabytes of JSON): keep the errors.
        raise RuntimeError(f"compilation failed:\n{str(exc).split('> command')[0].strip()}") from exc
    enums = _enum_members(output)
    result: dict[str, dict[str, Any]] = {}
    for source, contracts in output["contracts"].items():
        for name, data in contracts.items():
            ours = source.startswith("contracts/") and name in SHIPPED_CONTRACTS
            if not (ours or SHIPPED_INTERFACES.get(name) == source):
                continue  # OpenZeppelin's and other libraries' contracts, test helpers not shipped
            result[name] = {
                "contractName": name,
                "source": source,
                "abi": data["abi"],
                # Each custom error's NatSpec notice by signature: what the CLI and the API say
                # when the contract refuses (smartsla.errors.ContractReverted.explanation).
                "errorNotices": {sig: " ".join(doc[0]["notice"].split())
                                 for sig, doc in data.get("userdoc", {}).get("errors", {}).items()
                                 if doc and doc[0].get("notice")},
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "compiler": {"evmVersion": EVM_VERSION, "optimizerRuns": OPTIMIZER_RUNS},
                # The members of each enum the ABI names (an ABI says only `uint8`): how an error
                # argument such as WrongStatus(2) is shown as WrongStatus(Ended).
                "enums": {e: enums[e] for e in sorted(_enums_in(data["abi"])) if e in enums},
            }
    missing = (set(SHIPPED_CONTRACTS) | set(SHIPPED_INTERFACES)) - set(result)
    if missing:
        raise RuntimeError(f"compilation produced no artifact for {sorted(missing)}")
    return result


def _enum_members(output: dict[str, Any]) -> dict[str, list[str]]:
    """Every enum declared in our sources: name -> member names, from the compiler's AST."""
    found: dict[str, list[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("nodeType") == "EnumDefinition":
                found[node["name"]] = [m["name"] for m in node["members"]]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for source, data in output.get("sources", {}).items():
        if source.startswith("contracts/"):
            walk(data.get("ast"))
    return found


def _enums_in(abi: list[dict[str, Any]]) -> set[str]:
    """Enum names an ABI's parameters use (internalType `enum Status` or `enum Agreement.Status`)."""
    names: set[str] = set()

    def visit(params: list[dict[str, Any]]) -> None:
        for p in params:
            internal = p.get("internalType", "")
            if internal.startswith("enum "):
                names.add(internal[5:].split(".")[-1].removesuffix("[]"))
            visit(p.get("components", []))

    for item in abi:
        visit(item.get("inputs", []))
        visit(item.get("outputs", []))
    return names


def artifact_text(artifact: dict[str, Any]) -> str:
    """The exact text of a committed artifact file (stable key order, trailing newline)."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def write_artifacts(artifacts: dict[str, dict[str, Any]], out_dir: Path = ARTIFACTS_DIR) -> list[Path]:
    """Write one JSON file per contract into the package; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in sorted(artifacts.items()):
        path = out_dir / f"{name}.json"
        path.write_text(artifact_text(artifact))
        written.append(path)
    return written
