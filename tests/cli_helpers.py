"""Run the `smartsla` command line in-process (with the `cli_chain` fixture of tests/conftest.py)."""

from __future__ import annotations

from typer.testing import CliRunner

from smartsla import cli


def invoke(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `smartsla ARGS`; an exception that is not an exit is raised."""
    result = CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr
