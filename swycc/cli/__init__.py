"""The ``swycc`` command line: ``swycc.cli.args`` (shared option types, exit codes, config
building) at the bottom, one module per verb group above it, ``swycc.cli.main`` on top."""

from swycc.cli.main import main, make_parser

__all__ = ["main", "make_parser"]
