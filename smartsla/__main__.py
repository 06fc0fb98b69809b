"""`python -m smartsla` runs the command line."""

from smartsla.cli import app

app(prog_name="smartsla")
