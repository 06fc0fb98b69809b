"""Connection to a chain: the embedded eth-tester/py-evm chain (the default) or any JSON-RPC URL.

Every other module sends transactions through :meth:`Chain.transact`, so reverts are turned into
:class:`~smartsla.errors.ContractReverted` naming the contract's custom error in one place.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import Contract, ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.types import TxParams, Wei

from . import artifacts
from .errors import ChainUnavailable, ContractReverted, SmartSLAError, decode_revert

try:  # eth-tester reports reverts with its own exception, carrying the data as a bytes repr
    from eth_tester.exceptions import TransactionFailed as _TesterFailed
except ImportError:  # eth-tester is the optional 'tester' extra: RPC-only installs do without it
    class _TesterFailed(Exception):  # type: ignore[no-redef]
        pass

REVERTS = (ContractLogicError, _TesterFailed)


def _estimate_gas_embedded(state: Any, transaction: Any) -> int:
    """``eth_estimateGas`` on the embedded chain, in two or three runs of the transaction instead
    of py-evm's dozen.

    py-evm's default estimator bisects between the intrinsic gas and the block's limit to within
    21,000 gas: about 12 runs per estimate, and web3 estimates before every transaction, so it was
    three quarters of the CPU of the embedded-chain tests and of ``smartsla demo`` (issue 13 item
    9). Here: one run at the block's limit (a revert raises exactly as before, with its data), then
    the gas that run used, confirmed by a run with that much; a call forwarding 63/64 of its gas can
    need a little more, so a few larger tries, then py-evm's own search. Whatever it returns, the
    transaction was seen to succeed with that gas, as with py-evm's."""
    from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
    from eth.vm.spoof import SpoofTransaction

    def run(gas: int, **spoof: Any) -> Any:
        snapshot = state.snapshot()
        try:
            return state.apply_transaction(SpoofTransaction(transaction, gas=gas, **spoof))
        finally:
            state.revert(snapshot)

    full = run(state.gas_limit, gas_price=0)
    if full.is_error:
        raise full.error
    gas = transaction.intrinsic_gas + full.get_gas_used()
    for _ in range(4):
        gas = min(gas, state.gas_limit)
        if not run(gas).is_error:
            return int(gas)
        gas = gas * 64 // 63 + 2_300
    return int(binary_gas_search_intrinsic_tolerance(state, transaction))


def _rpc_error_data(data: Any) -> str | None:
    """The revert data inside a JSON-RPC error's ``data`` field, whatever the node's shape.

    Anvil and geth put the hex string itself in ``data``. Ganache does so for ``eth_call`` but,
    for ``eth_estimateGas`` (which web3 runs before every transaction), nests it:
    ``{"hash": null, "programCounter": 5189, "result": "0x3ce914e4", "reason": null, ...}``;
    some nodes wrap it as ``{"data": "0x..."}``. Reading only the string form lost the error's
    name on Ganache (issue 10, finding 8: "settlement refused: Reverted()").
    """
    if isinstance(data, str):
        return data if data.startswith("0x") else None
    if isinstance(data, dict):
        for key in ("result", "data"):
            found = _rpc_error_data(data.get(key))
            if found is not None:
                return found
        # Ganache < 7 keyed the error by transaction hash: {"0xhash": {"return": "0x..."}}
        for value in data.values():
            if isinstance(value, dict) and isinstance(value.get("return"), str):
                return _rpc_error_data(value["return"])
    return None


def _revert_data(exc: Exception) -> str | bytes | None:
    """Raw revert data from web3's ContractLogicError or eth-tester's TransactionFailed."""
    if isinstance(exc, ContractLogicError):
        return _rpc_error_data(exc.data)
    text = str(exc.args[0]) if exc.args else ""
    text = text.removeprefix("execution reverted: ")
    if text.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    if text.startswith("0x"):
        return text
    # A decoded Error(string) reason: re-encode so that decode_revert names it uniformly.
    return b"\x08\xc3\x79\xa0" + abi_encode(["string"], [text]) if text else None

EMBEDDED = "embedded"
RECEIPT_TIMEOUT_S = 60


@dataclass(frozen=True)
class TxResult:
    """What a mined transaction did."""

    tx_hash: str
    gas_used: int
    block_number: int
    receipt: Any


class Chain:
    """A web3 connection plus the few things every caller needs: accounts, signing, time."""

    def __init__(self, w3: Web3, *, embedded: bool = False, url: str = EMBEDDED):
        self.w3 = w3
        self.embedded = embedded
        self.url = url
        self._local: dict[str, LocalAccount] = {}
        # One contract class per ABI: building it costs ~9 ms and ~150 KB (a class per function
        # and event), too much to repeat for each of 10,000 agreements (issue 15 item 5).
        self._classes: dict[str, type[Contract]] = {}

    # ------------------------------------------------------------------ connecting
    @classmethod
    def connect(cls, url: str = EMBEDDED, *, timeout_s: float = 10.0) -> Chain:
        """Connect to ``"embedded"`` (an in-process eth-tester chain) or an HTTP JSON-RPC URL."""
        if url == EMBEDDED:
            try:
                from eth_tester import EthereumTester, PyEVMBackend
                from web3 import EthereumTesterProvider
            except ImportError as exc:  # the optional extra: a deployment on a real node does without it
                raise SmartSLAError(
                    "the embedded chain needs the 'tester' extra (eth-tester and py-evm): "
                    "pip install 'smartsla[tester]', or give the JSON-RPC URL of a running node "
                    f"(Anvil, Ganache: --rpc-url http://127.0.0.1:8545); missing: {exc.name}") from exc

            # Generous gas limit: the default block gas limit of eth-tester is small.
            backend = PyEVMBackend(genesis_parameters=PyEVMBackend.generate_genesis_params({"gas_limit": 30_000_000}))
            # The chain copies its class's estimator when made (and the class is made afresh for
            # each backend, so this touches no other chain): both, for a chain remade on a revert.
            type(backend.chain).gas_estimator = staticmethod(_estimate_gas_embedded)
            backend.chain.gas_estimator = _estimate_gas_embedded
            provider = EthereumTesterProvider(EthereumTester(backend))
            return cls(Web3(provider), embedded=True, url=url)
        if not url.startswith(("http://", "https://")):
            raise SmartSLAError(f"chain URL must be 'embedded' or start with http:// or https://, got {url!r}")
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
        chain = cls(w3, url=url)
        chain.ensure_up()
        return chain

    def ensure_up(self) -> None:
        """Raise ChainUnavailable with the URL when the node does not answer."""
        try:
            self.w3.eth.chain_id  # noqa: B018 - a cheap call that needs a live node
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            raise ChainUnavailable(f"no chain answers at {self.url}: {exc.__class__.__name__}") from exc

    @property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    @property
    def accounts(self) -> list[str]:
        """Accounts the node (or eth-tester) unlocks, then any local keys added."""
        node = list(self.w3.eth.accounts)
        return node + [a for a in self._local if a not in node]

    def add_key(self, private_key: str | bytes) -> str:
        """Sign locally for this key from now on (for chains whose nodes hold no keys)."""
        account: LocalAccount = Account.from_key(private_key)
        if account.address not in self._local:
            self._local[account.address] = account
            self.w3.middleware_onion.inject(
                SignAndSendRawMiddlewareBuilder.build(account), name=f"sign-{account.address}", layer=0
            )
        return account.address

    def new_account(self, fund_from: str | None = None, amount: int = 10**18) -> tuple[str, str]:
        """A fresh local key (signed locally from now on), funded with `amount` wei for gas when
        `fund_from` is given. Returns (address, private key hex): dev chains and tests only."""
        account = Account.create()
        address = self.add_key(account.key)
        if fund_from is not None:
            tx = self.w3.eth.send_transaction({"from": fund_from, "to": address, "value": Wei(amount)})
            self.w3.eth.wait_for_transaction_receipt(tx, timeout=RECEIPT_TIMEOUT_S)
        return address, account.key.to_0x_hex()

    # ------------------------------------------------------------------ contracts
    def contract(self, name: str, address: str) -> Contract:
        """The deployed contract `name` at `address`; struct results decode as named tuples, so
        readers use the Solidity field names rather than positions."""
        cls = self._classes.get(name)
        if cls is None:
            cls = self._classes[name] = self.w3.eth.contract(abi=artifacts.load(name)["abi"], decode_tuples=True)
        return cls(address=Web3.to_checksum_address(address))

    def deploy(self, name: str, sender: str, *args: Any) -> tuple[Contract, TxResult]:
        art = artifacts.load(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        result = self.transact(factory.constructor(*args), sender, action=f"deploy {name}")
        address = result.receipt["contractAddress"]
        return self.contract(name, address), result

    def transact(self, fn: ContractFunction | ContractConstructor, sender: str, *, value: int = 0,
                 action: str = "") -> TxResult:
        """Send `fn` from `sender`, wait for it to be mined, raise ContractReverted on revert."""
        params: TxParams = {"from": Web3.to_checksum_address(sender)}
        if value:
            params["value"] = Wei(value)
        try:
            tx_hash = fn.transact(params)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        except REVERTS as exc:
            raise decode_revert(_revert_data(exc), action) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ChainUnavailable(f"chain at {self.url} stopped answering during {action or 'a transaction'}") from exc
        except TimeExhausted as exc:
            raise ChainUnavailable(f"transaction not mined within {RECEIPT_TIMEOUT_S}s ({action})") from exc
        except Web3RPCError as exc:
            raise SmartSLAError(f"{action or 'transaction'} refused by the node: {exc}") from exc
        if receipt["status"] != 1:
            # Mined but reverted (gas estimation passed, state changed in between): replay as a call.
            raise self._replay_revert(fn, params, receipt, action)
        return TxResult(tx_hash=receipt["transactionHash"].to_0x_hex(), gas_used=receipt["gasUsed"],
                        block_number=receipt["blockNumber"], receipt=receipt)

    def _replay_revert(
        self, fn: ContractFunction | ContractConstructor, params: TxParams, receipt: Any, action: str
    ) -> ContractReverted:
        if isinstance(fn, ContractConstructor):  # a constructor cannot be replayed as a call
            return ContractReverted("Reverted", (), action=action)
        try:
            fn.call(params, block_identifier=receipt["blockNumber"] - 1)
        except REVERTS as exc:
            return decode_revert(_revert_data(exc), action)
        return ContractReverted("Reverted", (), action=action)

    def simulate(self, fn: ContractFunction, sender: str, *, value: int = 0, action: str = "") -> None:
        """Run `fn` as `sender` against the next block without sending it: ContractReverted (the
        contract's named error) when the contract would refuse. The contract is the authority on
        its rules; callers ask it instead of re-coding them. The pending block is used where the
        node has one, so a rule on time (a deposit after the start) is judged at the time the
        transaction would be mined, not at a dev chain's last block."""
        params: TxParams = {"from": Web3.to_checksum_address(sender), "value": Wei(value)}
        try:
            fn.call(params, block_identifier="pending")
        except REVERTS as exc:
            raise decode_revert(_revert_data(exc), action) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ChainUnavailable(f"chain at {self.url} stopped answering") from exc

    def call(self, fn: ContractFunction, *, action: str = "") -> Any:
        """A read-only call; a revert raises ContractReverted naming the error."""
        try:
            return fn.call()
        except REVERTS as exc:
            raise decode_revert(_revert_data(exc), action) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ChainUnavailable(f"chain at {self.url} stopped answering") from exc

    # ------------------------------------------------------------------ time
    def now(self) -> int:
        """Timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def mine_at(self, timestamp: int) -> None:
        """Mine a block at `timestamp` or later (dev chains only: embedded, Anvil, Ganache)."""
        current = self.now()
        if timestamp <= current:
            timestamp = current + 1
        if self.embedded:
            self.w3.provider.ethereum_tester.time_travel(timestamp)  # type: ignore[attr-defined]
            return
        self.w3.provider.make_request("evm_increaseTime", [timestamp - current])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def balance(self, address: str, asset: str | None = None) -> int:
        """Balance of `address` in native ETH (asset None or zero address) or an ERC-20."""
        if asset is None or int(asset, 16) == 0:
            return self.w3.eth.get_balance(Web3.to_checksum_address(address))
        token = self.contract("IERC20Metadata", asset)
        return token.functions.balanceOf(Web3.to_checksum_address(address)).call()
