"""Start and stop a local development chain (Anvil or Ganache) from node_modules, on 127.0.0.1.

Both nodes come from ``npm ci`` (see package.json). We start the real programs ourselves, not
their wrappers, so that the PID we hold is the node's own:

* Anvil: the native binary ``node_modules/@foundry-rs/anvil-<os>-<cpu>/bin/anvil`` of this machine's
  platform (package-lock.json ships linux, darwin and win32 builds as optional dependencies and npm
  installs the matching one; the ``node_modules/.bin/anvil`` Node wrapper would sit in between);
  chain id 31337.
* Ganache: ``node node_modules/ganache/dist/node/cli.js`` (not ``npx``, which leaves a chain of
  parent processes); deterministic accounts, shanghai hardfork, chain id 1337.

node_modules is $SMARTSLA_NODE_MODULES, else the checkout's when this package runs from one, else
./node_modules in the current directory (an installed package has no checkout to look in).

``start_node`` returns once the JSON-RPC endpoint answers. With a ``state_dir`` the node's PID,
URL and log go to ``<state_dir>/<kind>.json`` and ``<kind>.log`` so that another process (the
``scripts/chain.py stop`` command) can find and stop it; :func:`find_node` and :func:`stop_node`
read that file back.

    with start_node("anvil") as node:           # free port, log in a temporary file
        chain = Chain.connect(node.url)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import requests

from .compiler import PROJECT_ROOT
from .errors import SmartSLAError

NodeKind = Literal["anvil", "ganache"]
KINDS: tuple[str, ...] = ("anvil", "ganache")
CHAIN_IDS = {"anvil": 31337, "ganache": 1337}
HOST = "127.0.0.1"
# A checkout (package.json beside the package) keeps node_modules and the nodes' state at its
# root; an installed package (site-packages) uses the current directory instead.
_BASE = PROJECT_ROOT if (PROJECT_ROOT / "package.json").is_file() else Path.cwd()
NODE_MODULES = Path(os.environ.get("SMARTSLA_NODE_MODULES") or _BASE / "node_modules")
DEFAULT_STATE_DIR = _BASE / ".smartsla"

# (sys.platform, machine) -> the @foundry-rs/anvil-<suffix> package package-lock.json ships for it.
ANVIL_PLATFORMS: dict[tuple[str, str], str] = {
    ("linux", "x86_64"): "linux-amd64",
    ("linux", "amd64"): "linux-amd64",
    ("linux", "aarch64"): "linux-arm64",
    ("linux", "arm64"): "linux-arm64",
    ("darwin", "x86_64"): "darwin-amd64",
    ("darwin", "arm64"): "darwin-arm64",
    ("win32", "amd64"): "win32-amd64",
    ("win32", "x86_64"): "win32-amd64",
}


def anvil_binary(system: str | None = None, machine: str | None = None) -> Path:
    """Anvil's path inside node_modules for this platform (or the one given). Raises NodeToolMissing."""
    system = system or sys.platform
    machine = (machine or platform.machine()).lower()
    suffix = ANVIL_PLATFORMS.get((system, machine))
    if suffix is None:
        shipped = ", ".join(sorted(set(ANVIL_PLATFORMS.values())))
        raise NodeToolMissing(f"package-lock.json ships no Anvil for {system}/{machine} (only {shipped}): "
                              "install Foundry's anvil and start it yourself, then pass its URL")
    return Path("@foundry-rs") / f"anvil-{suffix}" / "bin" / ("anvil.exe" if system == "win32" else "anvil")


GANACHE_CLI = Path("ganache") / "dist" / "node" / "cli.js"

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 20


class NodeError(SmartSLAError):
    """A local node failed to start or to stop."""


class NodeToolMissing(NodeError):
    """node_modules (or Node itself) lacks what is needed to run the node."""


# ---------------------------------------------------------------------------- processes


def pid_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie counts as dead: our PID 1 does not always reap orphans."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    for line in status.splitlines():
        if line.startswith("State:"):
            return "Z" not in line.split()[1]
    return True


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _same_program(pid: int, cmd: list[str]) -> bool:
    """Does `pid` still run the program we started (guards against a reused PID)?"""
    actual = _cmdline(pid)
    if actual is None or not cmd:  # no /proc here, or an old record: cannot tell, assume it is ours
        return True
    return actual == cmd


def listens_on(pid: int, port: int) -> bool | None:
    """Does process `pid` hold the listening TCP socket of `port`? None when /proc cannot tell."""
    inodes: set[str] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode.
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                        inodes.add(fields[9])
        links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except (OSError, ValueError, IndexError):
        return None
    if not inodes:
        return None
    return any(f"socket:[{inode}]" in links for inode in inodes)


def kill_pid(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM `pid`, SIGKILL it if it still runs after `timeout_s`. True if it had been running."""
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_dead(pid, timeout_s):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_dead(pid, 5.0):
        raise NodeError(f"process {pid} survived SIGKILL")
    return True


def _wait_dead(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# ---------------------------------------------------------------------------- JSON-RPC


def rpc(url: str, method: str, params: list[Any] | None = None, timeout_s: float = 2.0) -> Any:
    """One JSON-RPC call, ignoring proxy settings (our nodes are local). Raises on failure."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                                timeout=timeout_s)
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise NodeError(f"{method} at {url}: {body['error']}")
    return body["result"]


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """True if a JSON-RPC node answers at `url`."""
    try:
        rpc(url, "eth_chainId", timeout_s=timeout_s)
    except (requests.RequestException, ValueError, NodeError):
        return False
    return True


# ---------------------------------------------------------------------------- the node


# Nodes started by this process and not detached: stopped at exit even if the caller forgot.
_RUNNING: set[LocalNode] = set()


@dataclass(eq=False)
class LocalNode:
    """A running local chain. ``stop()`` (or leaving the ``with`` block) ends it."""

    kind: str
    url: str
    port: int
    pid: int
    chain_id: int
    cmd: list[str]
    log_path: Path | None = None
    state_path: Path | None = None
    startup_s: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_handle: IO[bytes] | None = field(default=None, repr=False)
    _temp_log: bool = field(default=False, repr=False)

    def __enter__(self) -> LocalNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return pid_alive(self.pid) and _same_program(self.pid, self.cmd)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM the node, SIGKILL it after `timeout_s`; True if it was still running."""
        was_running = False
        if self._proc is not None:
            if self._proc.poll() is None:
                was_running = True
                self._proc.terminate()
                try:
                    self._proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5.0)
        elif pid_alive(self.pid) and _same_program(self.pid, self.cmd):
            # (A live PID running another program means ours is long gone and the PID reused.)
            was_running = kill_pid(self.pid, timeout_s)
        _RUNNING.discard(self)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self.state_path is not None:
            _remove_state_if_ours(self.state_path, self.pid)
        if self._temp_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
        return was_running

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "port": self.port, "pid": self.pid, "chain_id": self.chain_id,
                "cmd": self.cmd, "log": str(self.log_path) if self.log_path else None, "started_at": time.time()}


def _tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return "(no log)"
    with path.open("rb") as handle:  # a long-running node's log can be large: read its end only
        handle.seek(max(0, path.stat().st_size - 64 * 1024))
        text = handle.read().decode(errors="replace").rstrip("\n").splitlines()
    return "\n".join(text[-lines:]) if text else "(log is empty)"


def _log_excerpt(node: LocalNode) -> str:
    where = "its log" if node._temp_log else str(node.log_path)
    return f"Last lines of {where}:\n{node.log_tail()}"


def _remove_state_if_ours(path: Path, pid: int) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


@atexit.register
def _stop_leftovers() -> None:
    """Nodes this process started (not detached ones) do not outlive it."""
    for node in list(_RUNNING):
        with contextlib.suppress(Exception):
            node.stop(timeout_s=2.0)


def node_command(kind: str, port: int, *, host: str = HOST, block_time: float | None = None,
                 hardfork: str | None = None, node_modules: Path = NODE_MODULES) -> list[str]:
    """The command line that starts `kind` on `host:port`. Raises NodeToolMissing."""
    if kind not in KINDS:
        raise NodeError(f"unknown node kind {kind!r}: choose one of {', '.join(KINDS)}")
    if not node_modules.is_dir():
        raise NodeToolMissing(f"{node_modules} does not exist: run `npm ci` in {node_modules.parent}")
    if kind == "anvil":
        binary = node_modules / anvil_binary()
        if not binary.is_file():
            raise NodeToolMissing(f"the Anvil binary {binary} is missing: run `npm ci` "
                                  f"(it comes with @foundry-rs/anvil for {sys.platform}/{platform.machine()})")
        cmd = [str(binary), "--host", host, "--port", str(port), "--chain-id", str(CHAIN_IDS["anvil"])]
        if block_time:
            cmd += ["--block-time", _num(block_time)]
        if hardfork:
            cmd += ["--hardfork", hardfork]
        return cmd
    script = node_modules / GANACHE_CLI
    if not script.is_file():
        raise NodeToolMissing(f"Ganache ({script}) is missing: run `npm ci`")
    node = shutil.which("node")
    if node is None:
        raise NodeToolMissing("Ganache needs Node.js, and `node` is not on PATH")
    cmd = [node, str(script), "--server.host", host, "--server.port", str(port),
           "--chain.chainId", str(CHAIN_IDS["ganache"]), "--chain.hardfork", hardfork or "shanghai",
           "--wallet.deterministic", "--logging.quiet"]
    if block_time:
        cmd += ["--miner.blockTime", _num(block_time)]
    return cmd


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def start_node(
    kind: NodeKind | str,
    port: int | None = None,
    block_time: float | None = None,
    *,
    host: str = HOST,
    hardfork: str | None = None,
    state_dir: Path | str | None = None,
    detach: bool = False,
    timeout_s: float = STARTUP_TIMEOUT_S,
    node_modules: Path = NODE_MODULES,
    extra_args: tuple[str, ...] = (),
) -> LocalNode:
    """Start a local `kind` node and return once its JSON-RPC endpoint answers.

    port: None picks a free port. block_time: seconds between blocks (None: a block per
    transaction). hardfork: Anvil's default is its latest; Ganache's is shanghai.
    state_dir: write ``<kind>.json`` (PID, URL) and ``<kind>.log`` there so that another
    process can find the node; refuses to start if a live node of that kind is recorded there.
    detach: the node gets its own session and outlives this process (for a background
    ``start`` command); otherwise it is stopped when this process exits.
    extra_args: appended to the node's command line (e.g. Anvil's ``--state FILE`` to keep the
    chain across a restart).
    """
    node_command(kind, port or 0, host=host, node_modules=node_modules)  # fail early on missing tools
    state_path: Path | None = None
    if state_dir is not None:
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        existing = find_node(kind, state_dir)
        if existing is not None:
            raise NodeError(f"{kind} is already running at {existing.url} (pid {existing.pid}, "
                            f"recorded in {existing.state_path}); stop it first")
        state_path = state_dir / f"{kind}.json"
    if port is not None and port_in_use(port, host):
        raise NodeError(f"port {port} on {host} is already in use (another node?); choose another --port")

    attempts = 1 if port is not None else 3  # a picked port can be taken between pick and bind
    for attempt in range(attempts):
        chosen = port if port is not None else free_port(host)
        try:
            node = _launch(kind, chosen, host=host, block_time=block_time, hardfork=hardfork, state_dir=state_dir,
                           detach=detach, timeout_s=timeout_s, node_modules=node_modules, extra_args=extra_args)
        except _PortTaken:
            if port is not None:
                raise NodeError(f"port {port} on {host} is already in use (another node?); choose another port") \
                    from None
            if attempt + 1 == attempts:
                raise NodeError(f"{kind} could not bind a port on {host}") from None
            continue
        if state_path is not None:
            node.state_path = state_path
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(node.to_state(), indent=2) + "\n")
            tmp.replace(state_path)
        return node
    raise AssertionError("unreachable")  # pragma: no cover


class _PortTaken(Exception):
    pass


def _launch(kind: str, port: int, *, host: str, block_time: float | None, hardfork: str | None,
            state_dir: Path | None, detach: bool, timeout_s: float, node_modules: Path,
            extra_args: tuple[str, ...] = ()) -> LocalNode:
    cmd = node_command(kind, port, host=host, block_time=block_time, hardfork=hardfork, node_modules=node_modules)
    cmd += list(extra_args)
    if state_dir is not None:
        log_path, temp_log = state_dir / f"{kind}.log", False
    else:
        fd, name = tempfile.mkstemp(prefix=f"smartsla-{kind}-", suffix=".log")
        os.close(fd)
        log_path, temp_log = Path(name), True
    log_handle = log_path.open("wb")
    url = f"http://{host}:{port}"
    began = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_handle, stderr=subprocess.STDOUT,
                            cwd=node_modules.parent, start_new_session=detach)
    node = LocalNode(kind=kind, url=url, port=port, pid=proc.pid, chain_id=CHAIN_IDS[kind], cmd=cmd,
                     log_path=log_path, _proc=proc, _log_handle=log_handle, _temp_log=temp_log)
    try:
        if not detach:
            _RUNNING.add(node)
        chain_id = _wait_ready(node, proc, timeout_s)
    except BaseException:
        tail = node.log_tail()
        node.stop(timeout_s=2.0)  # a temporary log goes too: its tail is in the error
        if any(s in tail for s in ("Address already in use", "EADDRINUSE", "address in use")):
            raise _PortTaken from None
        raise
    if chain_id != CHAIN_IDS[kind]:
        node.stop()
        raise NodeError(f"{kind} at {url} reports chain id {chain_id}, expected {CHAIN_IDS[kind]}")
    node.chain_id = chain_id
    node.startup_s = time.monotonic() - began
    return node


def _wait_ready(node: LocalNode, proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            raise NodeError(f"{node.kind} exited with code {code} during startup ({' '.join(node.cmd)}).\n"
                            f"{_log_excerpt(node)}")
        try:
            chain_id = int(rpc(node.url, "eth_chainId", timeout_s=0.5), 16)
        except (requests.RequestException, ValueError, NodeError):
            pass
        else:
            if listens_on(proc.pid, node.port) is False:  # someone else took the port first
                raise _PortTaken
            return chain_id
        if time.monotonic() >= deadline:
            raise NodeError(f"{node.kind} did not answer JSON-RPC at {node.url} within {timeout_s:.0f}s.\n"
                            f"{_log_excerpt(node)}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------- state files


def state_file(kind: str, state_dir: Path | str = DEFAULT_STATE_DIR) -> Path:
    return Path(state_dir) / f"{kind}.json"


def read_state(kind: str, state_dir: Path | str = DEFAULT_STATE_DIR) -> dict[str, Any] | None:
    path = state_file(kind, state_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise NodeError(f"{path} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else None


def find_node(kind: str, state_dir: Path | str = DEFAULT_STATE_DIR) -> LocalNode | None:
    """The node of `kind` recorded in `state_dir` if its process still runs; a stale record is removed."""
    data = read_state(kind, state_dir)
    if data is None:
        return None
    path = state_file(kind, state_dir)
    node = LocalNode(kind=kind, url=data["url"], port=int(data["port"]), pid=int(data["pid"]),
                     chain_id=int(data["chain_id"]), cmd=list(data.get("cmd") or []),
                     log_path=Path(data["log"]) if data.get("log") else None, state_path=path)
    if not node.is_running():
        _remove_state_if_ours(path, node.pid)
        return None
    return node


def stop_node(kind: str, state_dir: Path | str = DEFAULT_STATE_DIR, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
    """Stop the node of `kind` recorded in `state_dir`; returns its PID, or None if none was running."""
    node = find_node(kind, state_dir)
    if node is None:
        return None
    node.stop(timeout_s)
    return node.pid
