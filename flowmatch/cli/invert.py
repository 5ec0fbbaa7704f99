"""``flowmatch invert``: map data back to noise (data -> noise) with a run's flow."""

from __future__ import annotations

import argparse
from pathlib import Path

from flowmatch.cli.common import (
    add_device_flags,
    add_run_dir,
    add_solver_flags,
    add_time_grid_flag,
    grid_kwargs,
    load_from_args,
)
from flowmatch.cli.limits import check_finite_result, check_solve_memory
from flowmatch.cli.outputs import check_output, save_npy
from flowmatch.errors import check_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``invert`` subparser."""
    p = sub.add_parser(name, help="map data back to noise (data -> noise)")
    add_run_dir(p)
    p.add_argument("--data", type=Path, required=True, help=".npy/.npz/.csv file of points")
    p.add_argument("--out", type=Path, required=True, help="new .npy file (never replaced)")
    add_solver_flags(p)
    add_device_flags(p)
    add_time_grid_flag(p)


def run(args: argparse.Namespace) -> None:
    """Write the noise of the points of ``--data`` to ``--out``."""
    from flowmatch.data import load_array
    from flowmatch.errors import check_points

    check_output(args.out, ".npy")
    check_int(args.solver_steps, "--solver-steps")
    flow, info = load_from_args(args)
    x = load_array(args.data)
    check_points(x, str(args.data), dim=info.dim)
    steps = args.solver_steps if flow.integrates_ode else 0
    what = f"inverting {x.shape[0]} points of {info.dim} values"
    check_solve_memory(info, x.shape[0], args.device, solver=args.solver, steps=steps, what=what)
    z = flow.invert(x, **grid_kwargs(args, flow, backward=True))
    check_finite_result(
        z, "the noise", "the run may have diverged, or the points lie far outside its data"
    )
    save_npy(args.out, z)
    print(f"wrote the noise of {x.shape[0]} points to {args.out}")
