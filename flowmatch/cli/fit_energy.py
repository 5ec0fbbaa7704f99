"""``flowmatch fit-energy``: fit a planar flow to an unnormalized 2-D energy by reverse KL."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from flowmatch.cli.limits import check_number
from flowmatch.cli.outputs import check_run_out, os_error_message
from flowmatch.errors import FlowmatchError, check_int, check_memory, check_seed

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``fit-energy`` subparser."""
    from flowmatch.data.energies import ENERGIES
    from flowmatch.flows import PLANAR_ACTIVATIONS

    p = sub.add_parser(name, help="fit a planar flow to an unnormalized 2-D energy by reverse KL")
    p.add_argument("energy", choices=list(ENERGIES), help="the target exp(-U) (Rezende–Mohamed)")
    p.add_argument("--out", type=Path, required=True, help="new run folder")
    p.add_argument("--layers", type=int, default=32, help="planar layers K (default: 32)")
    p.add_argument(
        "--planar-activation", choices=list(PLANAR_ACTIVATIONS), default="tanh", help="gate h"
    )
    p.add_argument(
        "--planar-affine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start with a learnable diagonal Gaussian",
    )
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps (default: 5000)")
    p.add_argument("--batch-size", type=int, default=256, help="draws of q per step (256)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 2e-3)")
    p.add_argument(
        "--anneal-steps",
        type=int,
        default=None,
        help="steps of the inverse-temperature ramp 0.01 -> 1 (default: steps / 4)",
    )
    p.add_argument("--seed", type=int, default=0, help="initialization and sampling seed (0)")
    p.add_argument(
        "--box",
        type=float,
        nargs=4,
        metavar=("Z1MIN", "Z1MAX", "Z2MIN", "Z2MAX"),
        help="the box of the target and of the report (default: -4 4 -4 4)",
    )
    p.add_argument("--grid", type=int, default=400, help="quadrature grid per axis (400)")
    p.add_argument("--n", type=int, default=20_000, help="draws of q for the report (20000)")


def run(args: argparse.Namespace) -> None:
    """Fit, save the run into ``--out`` with its report and density figure, print the report."""
    from flowmatch.training.checkpoint import check_new_run_dir
    from flowmatch.training.energy import fit_energy, save_energy_fit
    from flowmatch.viz.energy import write_energy_fit_figure

    check_int(args.layers, "--layers")
    check_int(args.steps, "--steps")
    check_int(args.batch_size, "--batch-size")
    check_int(args.grid, "--grid", minimum=2)
    check_int(args.n, "--n", minimum=2)
    if args.anneal_steps is not None:
        check_int(args.anneal_steps, "--anneal-steps", minimum=0)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise FlowmatchError(f"--lr must be a finite number > 0, got {args.lr}")
    check_seed(args.seed, optional=True)
    if args.box is not None:
        for value in args.box:
            check_number(value, "--box")
    # each point of a batch, of the report's draws or of the quadrature grid passes the layers
    points = max(args.batch_size, args.n, args.grid**2)
    what = f"{points} points through {args.layers} layers (--batch-size, --n or --grid squared)"
    check_memory(4 * points * (8 + 8 * args.layers), what)
    check_run_out(args.out)
    check_new_run_dir(args.out)  # before minutes of fitting, not after
    print(f"fitting {args.layers} planar layers to {args.energy} by reverse KL, {args.steps} steps")
    flow, fit = fit_energy(
        args.energy,
        layers=args.layers,
        activation=args.planar_activation,
        affine=args.planar_affine,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        anneal_steps=args.anneal_steps,
        seed=args.seed,
        box=None if args.box is None else tuple(args.box),
        report_samples=args.n,
        grid=args.grid,
    )
    save_energy_fit(flow, fit, args.out)
    try:  # a new file of the new run
        figure = write_energy_fit_figure(
            flow, fit.energy, args.out / "density.png", seed=args.seed, overwrite=False
        )
    except OSError as exc:
        raise FlowmatchError(os_error_message(exc, writing=True)) from None
    print("\n".join(fit.report.lines()))
    print(f"fit in {fit.seconds:.1f}s; run folder: {args.out}; figure: {figure}")
