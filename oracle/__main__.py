"""`python -m oracle --config oracle.yaml`: run the oracle daemon."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_config
from .daemon import run_daemon
from .logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oracle", description="smartsla oracle daemon")
    parser.add_argument("--config", required=True, help="path of the oracle YAML configuration")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        run_daemon(load_config(args.config))
    except ConfigError as exc:
        print(f"oracle: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
