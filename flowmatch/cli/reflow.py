"""``flowmatch reflow`` and ``flowmatch distill``: train a new run on a trained flow's pairs.

The pairs are (noise, ODE(noise)) of the teacher; reflow retrains on them for straighter
paths, distill trains a 1- or 2-step Euler student to land on the teacher's endpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flowmatch.cli.common import (
    N_PAIRS,
    add_device_flags,
    add_renamed_flag,
    add_run_dir,
    add_solver_flags,
)
from flowmatch.errors import check_int

__all__ = ["METHODS", "add_parser", "run"]

METHODS = {"reflow": "fm", "distill": "distill"}
"""Subcommand -> the training method of the new run."""

HELP = {
    "reflow": "retrain on (noise, sample) pairs of a trained flow: straighter paths",
    "distill": "train a 1- or 2-step Euler student on a trained flow's pairs",
}


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``reflow`` or the ``distill`` subparser (``name``)."""
    p = sub.add_parser(name, help=HELP[name])
    add_run_dir(p, "the trained teacher")
    p.add_argument("--out", type=Path, required=True, help="new run folder")
    add_renamed_flag(
        p,
        N_PAIRS,
        type=int,
        default=10_000,
        metavar="N",
        help="(x0, x1) pairs to make (10000)",
    )
    p.add_argument("--pair-seed", type=int, default=0, help="seed of the pairs' source draws")
    p.add_argument(
        "--pairs-file", type=Path, help="where to write the pairs (default: RUN_DIR/pairs/...)"
    )
    add_solver_flags(
        p, default="dopri5", steps=100, tolerances=False, what="ODE solver making the pairs"
    )
    p.add_argument(
        "--train-steps", type=int, help="optimizer steps of the new run (default: the teacher's)"
    )
    p.add_argument("--lr", type=float, help="peak learning rate (default: the teacher's)")
    p.add_argument("--batch-size", type=int, help="pairs per step (default: the teacher's)")
    p.add_argument("--seed", type=int, help="training seed (default: the teacher's)")
    p.add_argument(
        "--init",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start from the teacher's weights",
    )
    if name == "distill":
        p.add_argument(
            "--distill-steps", type=int, default=1, help="Euler steps of the student (1)"
        )
    add_device_flags(p, device=False)


def run(args: argparse.Namespace) -> None:
    """Make the teacher's pairs (or reuse them), train the new run, print both outcomes."""
    from flowmatch.training import make_reporter, reflow

    overrides = {k: getattr(args, k) for k in ("lr", "batch_size", "seed")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    n_pairs = check_int(args.n_pairs, N_PAIRS.new)
    solver_steps = check_int(args.solver_steps, "--solver-steps")
    for flag, value in (("--train-steps", args.train_steps), ("--batch-size", args.batch_size)):
        if value is not None:
            check_int(value, flag)
    distill_steps = getattr(args, "distill_steps", 1)
    check_int(distill_steps, "--distill-steps")
    print(f"making {n_pairs} pairs with {args.solver} from {args.run}")
    r = reflow(
        args.run,
        args.out,
        n_pairs=n_pairs,
        seed=args.pair_seed,
        solver=args.solver,
        steps=solver_steps,
        method=METHODS[args.command],
        distill_steps=distill_steps,
        train_steps=args.train_steps,
        init=args.init,
        pairs_file=args.pairs_file,
        ema=not args.raw_weights,
        overrides=overrides,
        reporter=make_reporter(),
    )
    made = "reused" if r.reused_pairs else f"made in {r.pairs_seconds:.1f}s (NFE {r.pairs_nfe})"
    print(f"pairs {made}: {r.pairs_file}")
    t = r.train
    loss = "n/a" if t.loss is None else f"{t.loss:.4f}"
    print(
        f"done: step {t.step}/{t.total_steps}, loss {loss}, {t.seconds:.1f}s; "
        f"run folder: {t.run_dir}"
    )
