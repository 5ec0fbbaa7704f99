"""``flowmatch plot``: a run's figures (samples, trajectories, the path, loss) and a GIF."""

from __future__ import annotations

import argparse
from pathlib import Path

from flowmatch.cli.common import (
    add_device_flags,
    add_run_dir,
    add_solver_flags,
    load_from_args,
    solver_kwargs,
)
from flowmatch.errors import check_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``plot`` subparser."""
    p = sub.add_parser(name, help="write PNG figures and a GIF of the path")
    add_run_dir(p)
    p.add_argument("--out", type=Path, help="figure folder (default: RUN_DIR/plots)")
    p.add_argument("--n", type=int, default=2000, help="samples to draw (2000)")
    p.add_argument("--seed", type=int, default=0, help="noise and data seed (0)")
    add_solver_flags(p)
    add_device_flags(p)


def run(args: argparse.Namespace) -> None:
    """Write the figures into ``--out`` and print their paths."""
    from flowmatch.viz.run_figures import write_run_figures

    check_int(args.n, "--n")
    options = solver_kwargs(args)
    flow, info = load_from_args(args)
    out = args.out or (info.run_dir / "plots")
    out.mkdir(parents=True, exist_ok=True)
    for path in write_run_figures(flow, info, out, n=args.n, seed=args.seed, **options):
        print(path)
