"""``flowmatch plot``: a run's figures (samples, trajectories, the path, loss) and a GIF."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from flowmatch.cli.common import (
    add_device_flags,
    add_run_dir,
    add_solver_flags,
    load_from_args,
    solver_kwargs,
)
from flowmatch.cli.limits import check_solve_memory
from flowmatch.cli.outputs import check_output_folder, os_error_message
from flowmatch.errors import FlowmatchError, check_int, check_seed

__all__ = ["PLOTS_DIR", "add_parser", "run"]

PLOTS_DIR = "plots"
"""The run's own figure folder, the default ``--out`` (and the only one inside a run folder)."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``plot`` subparser."""
    p = sub.add_parser(name, help="write PNG figures and a GIF of the path")
    add_run_dir(p)
    p.add_argument("--out", type=Path, help=f"figure folder (default: RUN_DIR/{PLOTS_DIR})")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the figures a previous plot left in the folder (else they are kept and "
        "the command refuses)",
    )
    p.add_argument("--n", type=int, default=2000, help="samples to draw (2000)")
    p.add_argument("--seed", type=int, default=0, help="noise and data seed (0)")
    add_solver_flags(p)
    add_device_flags(p)


def run(args: argparse.Namespace) -> None:
    """Write the figures into ``--out`` and print their paths."""
    from flowmatch.viz.run_figures import (
        FIGURES,
        TRAJECTORY_TIMES,
        trajectory_options,
        write_run_figures,
    )

    check_int(args.n, "--n")
    check_seed(args.seed, optional=True)
    options = solver_kwargs(args)
    out = args.out if args.out is not None else args.run / PLOTS_DIR
    check_output_folder(out, in_run=(PLOTS_DIR, f"{PLOTS_DIR}/*"))
    if not args.overwrite:
        old = [name for name in FIGURES if os.path.lexists(out / name)]
        if old:
            raise FlowmatchError(
                f"{out} already holds {', '.join(old)}; add --overwrite to replace them, or "
                "choose another --out"
            )
    flow, info = load_from_args(args)
    traj = trajectory_options(flow, options)
    states = traj.get("steps", TRAJECTORY_TIMES - 1) + 1 if flow.integrates_ode else 0
    check_solve_memory(
        info,
        args.n,
        args.device,
        solver=traj.get("solver"),
        steps=traj.get("steps", 0),
        states=2 * states,  # the states along the way, and their stacked copy
        what=f"--n {args.n} trajectories of {states} states of {info.dim} values",
    )
    new_folder = not os.path.lexists(out)
    try:
        paths = write_run_figures(
            flow, info, out, n=args.n, seed=args.seed, overwrite=args.overwrite, **options
        )
    except BaseException as exc:
        if new_folder and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # made for figures that never came
        if isinstance(exc, OSError):
            raise FlowmatchError(os_error_message(exc, writing=True)) from None
        raise
    for path in paths:
        print(path)
