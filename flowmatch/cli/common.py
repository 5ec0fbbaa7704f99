"""Pieces shared by the ``flowmatch`` subcommands: flags, renamed flags, loading a run, outputs.

Every subcommand reports bad input as one line ``flowmatch: error: ...`` with exit status 2
(:class:`OneLineParser` turns argparse's own complaints into that line too); its outputs are
checked and written by :mod:`flowmatch.cli.outputs`, its other flags checked by
:mod:`flowmatch.cli.limits`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.errors import FlowmatchError, check_int, lookup

if TYPE_CHECKING:
    from flowmatch.data.conditions import ConditionSpec
    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = [
    "N_PAIRS",
    "SOLVER_STEPS",
    "OneLineParser",
    "RenamedFlag",
    "add_condition_flags",
    "add_device_flags",
    "add_renamed_flag",
    "add_run_dir",
    "add_solver_flags",
    "add_time_grid_flag",
    "fixed_grid_solvers",
    "grid_kwargs",
    "load_from_args",
    "run_condition",
    "solver_kwargs",
    "version_string",
]

_SPELLINGS = "_renamed_flag_spellings"  # namespace key, while parsing: dest -> _Given


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose complaints are one-line :class:`FlowmatchError` s.

    It also finishes what :func:`add_renamed_flag` started: once the whole command line is
    parsed without error, ``parse_args`` prints one warning per old spelling used.
    """

    def error(self, message: str) -> None:  # one line, exit 2, like every other error
        raise FlowmatchError(f"{message} (see: {self.prog} --help)")

    def parse_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        namespace = super().parse_args(args, namespace)
        for given in vars(namespace).pop(_SPELLINGS, {}).values():
            if given.spelling == given.renamed.old:
                print(given.renamed.warning(given.prog), file=sys.stderr)
        return namespace


@dataclass(frozen=True)
class RenamedFlag:
    """A flag renamed so that one flag name means one thing in every subcommand.

    The old spelling keeps working for one release, hidden from ``--help``, with a warning.
    """

    new: str
    old: str
    why: str  # what the old spelling means elsewhere

    def warning(self, prog: str) -> str:
        """The one line printed when ``prog`` gets the old spelling.

        Example:
            >>> print(SOLVER_STEPS.warning("flowmatch sample"))  # doctest: +NORMALIZE_WHITESPACE
            flowmatch: warning: --steps of 'flowmatch sample' is deprecated and will be removed;
            use --solver-steps (--steps counts optimizer steps in train)
        """
        return (
            f"flowmatch: warning: {self.old} of '{prog}' is deprecated and will be removed; "
            f"use {self.new} ({self.why})"
        )


SOLVER_STEPS = RenamedFlag("--solver-steps", "--steps", "--steps counts optimizer steps in train")
N_PAIRS = RenamedFlag("--n-pairs", "--pairs", "--pairs names a pairs file in train")


@dataclass(frozen=True)
class _Given:
    """How a renamed flag was given: which spelling, to which (sub)command."""

    renamed: RenamedFlag
    spelling: str
    prog: str


class _Spelling(argparse.Action):
    """Store a renamed flag's value, given by its new or old spelling, and note which."""

    def __init__(self, option_strings: list[str], dest: str, *, renamed: RenamedFlag, **kw):
        super().__init__(option_strings, dest, **kw)
        self.renamed = renamed

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = vars(namespace).setdefault(_SPELLINGS, {})
        if self.dest in given and given[self.dest].spelling != option_string:
            parser.error(
                f"{self.renamed.old} is the old spelling of {self.renamed.new}; give only "
                f"{self.renamed.new}"
            )
        given[self.dest] = _Given(self.renamed, option_string, parser.prog)
        setattr(namespace, self.dest, values)


def add_renamed_flag(p: argparse.ArgumentParser, renamed: RenamedFlag, **kwargs: Any) -> None:
    """Add the flag ``renamed.new`` and its hidden old spelling, which warns when used.

    Both store into the new flag's field; giving both is an error. ``kwargs`` are those of
    ``add_argument`` for the new flag (``type``, ``default``, ``help``, ...); its help names
    the old spelling.
    """
    dest = renamed.new.lstrip("-").replace("-", "_")
    kwargs["help"] = f"{kwargs['help']} (formerly {renamed.old})"
    p.add_argument(renamed.new, dest=dest, action=_Spelling, renamed=renamed, **kwargs)
    kwargs.update(help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    p.add_argument(renamed.old, dest=dest, action=_Spelling, renamed=renamed, **kwargs)


def version_string() -> str:
    """``flowmatch X.Y.Z``, what ``--version`` prints."""
    from flowmatch._version import __version__

    return f"flowmatch {__version__}"


# -- flags ------------------------------------------------------------------------------------
def add_run_dir(p: argparse.ArgumentParser, help_text: str = "a run folder") -> None:
    """The positional ``RUN_DIR`` of the commands that use a trained run."""
    p.add_argument("run", type=Path, metavar="RUN_DIR", help=help_text)


def add_device_flags(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """``--device`` (unless ``device=False``) and ``--raw-weights``."""
    if device:
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--raw-weights", action="store_true", help="use raw weights instead of EMA")


def fixed_grid_solvers() -> list[str]:
    """The names of the solvers that take a fixed grid of steps (not adaptive)."""
    from flowmatch.solvers import SOLVERS

    return [name for name, spec in SOLVERS.items() if not spec.adaptive]


def add_solver_flags(
    p: argparse.ArgumentParser,
    *,
    default: str = "midpoint",
    steps: int = 50,
    fixed_grid: bool = False,
    tolerances: bool = True,
    what: str = "ODE solver",
) -> None:
    """``--solver`` (choices from the registry), ``--solver-steps`` and the adaptive solvers'
    ``--atol`` and ``--rtol``.

    Args:
        p: the subparser.
        default: the default solver.
        steps: the default steps of a fixed-grid solver.
        fixed_grid: offer the fixed-grid solvers only (and no tolerances).
        tolerances: add ``--atol`` and ``--rtol``.
        what: what the solver does, for the help.
    """
    from flowmatch.solvers import SOLVERS

    choices = fixed_grid_solvers() if fixed_grid else list(SOLVERS)
    p.add_argument("--solver", default=default, choices=choices, help=f"{what} ({default})")
    add_renamed_flag(
        p,
        SOLVER_STEPS,
        type=int,
        default=steps,
        metavar="N",
        help=f"steps of a fixed-grid solver ({steps}); each costs time and about 1 kB of memory",
    )
    if tolerances and not fixed_grid:
        p.add_argument("--atol", type=float, default=1e-5, help="adaptive solvers' abs. tolerance")
        p.add_argument("--rtol", type=float, default=1e-5, help="adaptive solvers' rel. tolerance")


def add_time_grid_flag(p: argparse.ArgumentParser) -> None:
    """``--time-grid``: where the steps of a fixed-grid solver fall."""
    from flowmatch.solvers import TIME_GRIDS

    p.add_argument(
        "--time-grid",
        default="uniform",
        choices=list(TIME_GRIDS),
        help="step times of fixed-grid solvers: "
        + "; ".join(f"{g.name}: {g.description}" for g in TIME_GRIDS.values()),
    )


def add_condition_flags(p: argparse.ArgumentParser) -> None:
    """``--class``, ``--cond``, ``--prompt``, ``--part`` and ``--guidance`` of conditional
    sampling."""
    p.add_argument(
        "--class",
        dest="label",
        metavar="K",
        help="class label to sample (a class-conditional run), or 'all' for every class in turn",
    )
    p.add_argument(
        "--cond",
        type=Path,
        metavar="FILE",
        help="condition vectors, (n, d) or (d,), in a .npy/.npz/.csv file",
    )
    p.add_argument(
        "--prompt",
        action="append",
        metavar="TEXT",
        help="a text prompt (a run trained on captions, e.g. digits-captions); repeat it for "
        "several, each one row of the --grid (--n split evenly between them)",
    )
    p.add_argument(
        "--part",
        action="append",
        metavar="NAME=VALUE",
        help="one part of a condition of named parts (a run trained on point-robot-instructed, "
        "e.g. --part image=camera.png --part instruction='go to the red goal'); repeat it for "
        "every part. VALUE is the words of a text part, a class number or name, or a file: "
        ".png/.jpg/.npy/.npz for an image, .npy/.npz/.csv for a vector",
    )
    p.add_argument(
        "--guidance",
        type=float,
        metavar="W",
        help="classifier-free guidance scale: v_u + W (v_c - v_u) (1: plain conditional)",
    )


# -- from flags to library calls --------------------------------------------------------------
def solver_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The solver options of the flags of :func:`add_solver_flags`, checked.

    Example:
        >>> args = argparse.Namespace(solver="rk4", solver_steps=8, atol=1e-5, rtol=1e-5)
        >>> solver_kwargs(args)
        {'solver': 'rk4', 'steps': 8, 'atol': 1e-05, 'rtol': 1e-05}
    """
    return {
        "solver": args.solver,
        "steps": check_int(args.solver_steps, SOLVER_STEPS.new),
        "atol": args.atol,
        "rtol": args.rtol,
    }


def grid_kwargs(args: argparse.Namespace, flow: Flow, *, backward: bool = False) -> dict[str, Any]:
    """Solver options with the ``--time-grid`` built for this flow, checked.

    See :func:`flowmatch.evaluation.samples.solver_options`; ``backward`` reverses the grid
    for ``invert``. A flow that does not integrate an ODE (``flow.integrates_ode`` False, a
    stack of layers) takes none: the options are checked, and an empty dict is returned.
    """
    from flowmatch.evaluation.samples import solver_options
    from flowmatch.solvers import SOLVERS

    name = getattr(args, "time_grid", "uniform")
    if name != "uniform" and lookup(SOLVERS, args.solver, "--solver").adaptive:
        raise FlowmatchError(
            f"--time-grid sets the steps of fixed-grid solvers, but {args.solver} is adaptive; "
            f"drop --time-grid or pick one of: {', '.join(fixed_grid_solvers())}"
        )
    options = solver_kwargs(args)
    if not flow.integrates_ode:
        return {}
    solver, steps = options.pop("solver"), options.pop("steps")
    return solver_options(flow, solver, steps, name, backward=backward, **options)


def load_from_args(args: argparse.Namespace) -> tuple[Flow, RunInfo]:
    """The flow and :class:`~flowmatch.training.runs.RunInfo` of the run folder ``RUN_DIR``.

    The flow is on ``--device`` (cpu if the command has no such flag), checked to exist, with
    the EMA weights unless ``--raw-weights``.
    """
    from flowmatch.errors import check_device
    from flowmatch.training.runs import load_run

    device = check_device(getattr(args, "device", "cpu"))
    return load_run(args.run, device=device, ema=not args.raw_weights)


def run_condition(info: RunInfo) -> ConditionSpec | None:
    """The run's recorded :class:`~flowmatch.data.conditions.ConditionSpec`, or None."""
    from flowmatch.data.conditions import ConditionSpec

    record = info.record.get("data", {}).get("condition")
    return None if record is None else ConditionSpec.from_dict(record)
