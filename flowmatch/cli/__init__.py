"""The ``flowmatch`` command line: one module per subcommand, wired together in ``main``."""

from flowmatch.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
