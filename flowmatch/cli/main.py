"""The ``flowmatch`` command: the registry of subcommands, the parser, and the entry point.

Each subcommand lives in its own module of :mod:`flowmatch.cli` with ``add_parser(sub, name)``
(which adds its subparser) and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from types import ModuleType

from flowmatch.cli.common import OneLineParser, version_string
from flowmatch.cli.launch import LAUNCHED_ENV
from flowmatch.errors import FlowmatchError

__all__ = ["COMMANDS", "build_parser", "main", "run_command"]

DESCRIPTION = "Train, sample, evaluate and plot flow-based generative models."

COMMANDS: dict[str, str] = {
    "train": "flowmatch.cli.train",
    "sample": "flowmatch.cli.sample",
    "invert": "flowmatch.cli.invert",
    "eval": "flowmatch.cli.eval",
    "logprob": "flowmatch.cli.logprob",
    "plot": "flowmatch.cli.plot",
    "report": "flowmatch.cli.report",
    "eval-images": "flowmatch.cli.eval_images",
    "fit-energy": "flowmatch.cli.fit_energy",
    "reflow": "flowmatch.cli.reflow",
    "distill": "flowmatch.cli.reflow",
    "demo": "flowmatch.cli.demo",
}
"""Subcommand -> the module holding its ``add_parser`` and ``run``, in ``--help`` order."""


def command_module(name: str) -> ModuleType:
    """The module of the subcommand ``name``."""
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``flowmatch`` command, one subparser per entry of :data:`COMMANDS`.

    Example:
        >>> args = build_parser().parse_args(["sample", "RUN", "--solver-steps", "8"])
        >>> args.command, args.solver, args.solver_steps
        ('sample', 'midpoint', 8)
    """
    p = OneLineParser(prog="flowmatch", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=version_string())
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name in COMMANDS:
        command_module(name).add_parser(sub, name)
    return p


def run_command(argv: list[str]) -> None:
    """Parse ``argv`` (without the program name) and run its subcommand.

    A library error that names solver options gets the flags that set them added here, so
    the library itself never speaks of flags.
    """
    from flowmatch.solvers import StepSizeUnderflow

    args = build_parser().parse_args(argv)
    args.argv = list(argv)  # what a launcher of several processes passes on to each
    try:
        command_module(args.command).run(args)
    except StepSizeUnderflow as exc:
        flags = (
            "--cnf-atol/--cnf-rtol, or --cnf-solver rk4 --cnf-steps 100"
            if args.command == "train"
            else "--atol/--rtol, or --solver rk4 --solver-steps 100"
        )
        raise FlowmatchError(f"{exc} (flags: {flags})") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowmatch`` command; returns the exit status.

    Bad input, and a file that cannot be read or written (a full disk, a read-only or missing
    folder, a dangling symlink), is one line ``flowmatch: error: ...`` on stderr and status 2;
    a warning is one line ``flowmatch: warning: ...``; an interrupted command says so and
    returns 130; ``--help`` and ``--version`` return 0.
    """
    from flowmatch.cli.outputs import os_error_message

    try:
        with warnings.catch_warnings():  # restores the usual display afterwards
            warnings.showwarning = _one_line_warning
            run_command(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse after --help or --version (its errors are ours)
        return 0 if exc.code is None else int(exc.code)
    except FlowmatchError as exc:
        return _report(exc)
    except OSError as exc:  # what a command did not catch itself: the path and the reason
        print(f"flowmatch: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # A stop signal that lands while an error is on its way out (a process of a job that
        # lost a peer is stopped by the launcher as it cleans up) is not the news: the error is.
        if isinstance(exc.__context__, FlowmatchError):
            return _report(exc.__context__)
        print("flowmatch: interrupted", file=sys.stderr)
        return 130
    return 0


def _report(exc: FlowmatchError) -> int:
    """Print ``exc`` as one line (unless another process says it) and return its status:
    130 for a stopped training run, else the error's (2 unless it says otherwise)."""
    from flowmatch.training import TrainingInterrupted

    stopped = isinstance(exc, TrainingInterrupted)
    if not quiet(exc):
        print(f"flowmatch: {'' if stopped else 'error: '}{exc}", file=sys.stderr)
    return 130 if stopped else getattr(exc, "exit_status", 2)


def quiet(exc: FlowmatchError) -> bool:
    """Whether another process of a job says what ``exc`` says (so this one stays silent):
    rank 0 for an error every process agreed on, the launcher for a process that died."""
    if getattr(exc, "quiet", False):
        return True
    return getattr(exc, "quiet_under_launcher", False) and bool(os.environ.get(LAUNCHED_ENV))


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one line, like the errors, without the source line."""
    print(f"flowmatch: warning: {message}", file=sys.stderr if file is None else file)
