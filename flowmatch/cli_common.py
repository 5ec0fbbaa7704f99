"""Pieces shared by the ``flowmatch`` subcommands: solver and device flags, loading a run
from the arguments, and writing outputs without overwriting anything."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch

from flowmatch.errors import FlowmatchError

__all__ = [
    "add_device_flags",
    "add_solver_flags",
    "check_output",
    "grid_kwargs",
    "load_from_args",
    "save_npy",
    "solver_kwargs",
    "version_string",
]


def add_device_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--raw-weights", action="store_true", help="use raw weights instead of EMA")


def add_solver_flags(p: argparse.ArgumentParser) -> None:
    from flowmatch.solvers import SOLVERS

    p.add_argument("--solver", default="midpoint", choices=list(SOLVERS), help="ODE solver")
    p.add_argument("--steps", type=int, default=50, help="steps of a fixed-grid solver")
    p.add_argument("--atol", type=float, default=1e-5, help="adaptive solvers' abs. tolerance")
    p.add_argument("--rtol", type=float, default=1e-5, help="adaptive solvers' rel. tolerance")
    add_device_flags(p)


def version_string() -> str:
    from flowmatch import __version__

    return f"flowmatch {__version__}"


def solver_kwargs(args: argparse.Namespace) -> dict:
    return {"solver": args.solver, "steps": args.steps, "atol": args.atol, "rtol": args.rtol}


def grid_kwargs(args: argparse.Namespace, flow, *, backward: bool = False) -> dict:
    """Solver options with the --time-grid built for this flow (see evaluation.solver_options)."""
    from flowmatch.evaluation.samples import solver_options
    from flowmatch.solvers import SOLVERS

    name = getattr(args, "time_grid", "uniform")
    if name != "uniform" and SOLVERS.get(args.solver) and SOLVERS[args.solver].adaptive:
        raise FlowmatchError(
            f"--time-grid sets the steps of fixed-grid solvers, but {args.solver} is adaptive; "
            "drop --time-grid or pick euler, midpoint, heun or rk4"
        )
    if args.steps < 1:
        raise FlowmatchError(f"--steps must be >= 1, got {args.steps}")
    return solver_options(
        flow, args.solver, args.steps, name, atol=args.atol, rtol=args.rtol, backward=backward
    )


def load_from_args(args: argparse.Namespace):
    from flowmatch.training.runs import load_run

    return load_run(args.run, device=args.device, ema=not args.raw_weights)


def check_output(path: Path, suffix: str) -> None:
    if path.suffix != suffix:
        raise FlowmatchError(f"--out must end in {suffix}, got {path}")
    if path.exists():
        raise FlowmatchError(f"{path} already exists; remove it or choose another --out")
    if not path.parent.is_dir():
        raise FlowmatchError(f"folder {path.parent} does not exist; create it first")


def save_npy(path: Path, x: torch.Tensor) -> None:
    from flowmatch.storage import atomic_write

    buf = io.BytesIO()
    np.save(buf, x.detach().cpu().numpy())
    atomic_write(path, buf.getvalue())
