"""Start, stop and inspect a local development chain (Anvil or Ganache) in the background.

    python scripts/chain.py start anvil [--port 8545] [--block-time 2]
    python scripts/chain.py status [anvil|ganache]
    python scripts/chain.py stop anvil

The node runs detached from this command; its PID, URL and log are kept under .smartsla/ in the
project root (or --state-dir), which is how `stop` and `status` find it again.
Exit codes: 0 success, 1 error, 3 (status) a node is not running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import smartsla  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartsla import localnode
from smartsla.localnode import KINDS, NodeError

NOT_RUNNING = 3


def cmd_start(args: argparse.Namespace) -> int:
    running = localnode.find_node(args.kind, args.state_dir)
    if running is not None:
        if args.port not in (None, running.port):
            print(f"error: {args.kind} is already running at {running.url} (pid {running.pid}), not on port "
                  f"{args.port}; stop it first", file=sys.stderr)
            return 1
        print(f"{args.kind} already running at {running.url} (pid {running.pid})")
        print(running.url)
        return 0
    node = localnode.start_node(args.kind, args.port if args.port is not None else 8545, args.block_time,
                                hardfork=args.hardfork, state_dir=args.state_dir, detach=True,
                                timeout_s=args.timeout)
    print(f"{args.kind} started: pid {node.pid}, chain id {node.chain_id}, log {node.log_path} "
          f"({node.startup_s:.2f}s)", file=sys.stderr)
    print(node.url)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    pid = localnode.stop_node(args.kind, args.state_dir, timeout_s=args.timeout)
    if pid is None:
        print(f"{args.kind} is not running")
    else:
        print(f"{args.kind} stopped (pid {pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    code = 0
    for kind in [args.kind] if args.kind else KINDS:
        node = localnode.find_node(kind, args.state_dir)
        if node is None:
            print(f"{kind}: not running")
            code = NOT_RUNNING
            continue
        rpc = "answers" if localnode.answers(node.url) else "DOES NOT ANSWER"
        print(f"{kind}: running at {node.url}, pid {node.pid}, chain id {node.chain_id}, JSON-RPC {rpc}, "
              f"log {node.log_path}")
    return code


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a local Anvil or Ganache chain from node_modules.")
    parser.add_argument("--state-dir", type=Path, default=localnode.DEFAULT_STATE_DIR,
                        help="where PID and log files live (default: .smartsla/ in the project root)")
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="start a node in the background and print its URL")
    start.add_argument("kind", choices=KINDS)
    start.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default 8545)")
    start.add_argument("--block-time", type=float, default=None,
                       help="seconds between blocks (default: one block per transaction)")
    start.add_argument("--hardfork", default=None, help="EVM hardfork (Anvil default: latest; Ganache: shanghai)")
    start.add_argument("--timeout", type=float, default=localnode.STARTUP_TIMEOUT_S,
                       help="seconds to wait for JSON-RPC")
    start.set_defaults(func=cmd_start)

    stop = sub.add_parser("stop", help="stop a node started by `start` (SIGTERM, then SIGKILL)")
    stop.add_argument("kind", choices=KINDS)
    stop.add_argument("--timeout", type=float, default=localnode.STOP_TIMEOUT_S,
                      help="seconds between SIGTERM and SIGKILL")
    stop.set_defaults(func=cmd_stop)

    status = sub.add_parser("status", help="show which nodes run")
    status.add_argument("kind", nargs="?", choices=KINDS)
    status.set_defaults(func=cmd_status)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.func(args)
    except NodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
