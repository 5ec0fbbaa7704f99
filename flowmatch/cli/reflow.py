"""``flowmatch reflow`` and ``flowmatch distill``: train a new run on a trained flow's pairs.

The pairs are (noise, ODE(noise)) of the teacher; reflow retrains on them for straighter
paths, distill trains a 1- or 2-step Euler student to land on the teacher's endpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from flowmatch.cli.common import (
    N_PAIRS,
    add_device_flags,
    add_renamed_flag,
    add_run_dir,
    add_solver_flags,
)
from flowmatch.cli.limits import check_number, check_solve_memory
from flowmatch.cli.outputs import check_output_folder, check_run_out
from flowmatch.errors import FlowmatchError, check_int, check_seed

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
        "--pairs-file",
        type=Path,
        help="where to write the pairs, a .npz file, reused if it exists "
        "(default: RUN_DIR/pairs/...)",
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
    """Make the teacher's pairs (or reuse them), train the new run, print both outcomes.

    Every flag, and the new run's config, is checked before any pair is made or written.
    """
    from flowmatch.training import make_reporter, reflow

    overrides = {k: getattr(args, k) for k in ("lr", "batch_size", "seed")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    n_pairs = check_int(args.n_pairs, N_PAIRS.new)
    solver_steps = check_int(args.solver_steps, "--solver-steps")
    for flag, value in (("--train-steps", args.train_steps), ("--batch-size", args.batch_size)):
        if value is not None:
            check_int(value, flag)
    if args.lr is not None:
        check_number(args.lr, "--lr", positive=True)
    check_seed(args.pair_seed, "--pair-seed", optional=True)
    check_seed(args.seed, optional=True)
    distill_steps = getattr(args, "distill_steps", 1)
    check_int(distill_steps, "--distill-steps")
    if args.pairs_file is not None:
        _check_pairs_file(args.pairs_file)
    check_run_out(args.out)
    _check_new_config(args, overrides, distill_steps)
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


def _check_pairs_file(path: Path) -> None:
    """A pairs file is an .npz; an existing one is reused, a new one goes where it may."""
    if path.suffix.lower() != ".npz":
        raise FlowmatchError(f"--pairs-file must end in .npz (a pairs archive), got {path}")
    if path.exists():
        if not path.is_file():
            raise FlowmatchError(f"--pairs-file {path} is a folder, not a pairs file")
        return  # reused if made with the same settings (checked when it is read)
    # its folder is made if missing: the nearest existing one must take it, outside runs
    check_output_folder(path, "--pairs-file", in_run=("pairs/*.npz",))


def _check_new_config(args: argparse.Namespace, overrides: dict[str, Any], steps: int) -> None:
    """Check the new run's config (the teacher's, with this command's changes) and that its
    pairs fit in memory, before the pairs are made."""
    from flowmatch.training.checkpoint import check_new_run_dir, read_run_record
    from flowmatch.training.reflow import PAIR_BATCH
    from flowmatch.training.runs import RunInfo

    check_new_run_dir(args.out)
    info = RunInfo(args.run, read_run_record(args.run), 0)
    fields = {
        "method": METHODS[args.command],
        "pairs": str((args.pairs_file or args.run / "pairs" / "pairs.npz").absolute()),
        "coupling": "independent",
        "distill_steps": steps,
        **({} if args.train_steps is None else {"steps": args.train_steps}),
        **overrides,
    }
    try:
        new = dataclasses.replace(info.config, **fields)
    except TypeError as exc:  # a teacher whose config lacks a field: reflow() will say more
        raise FlowmatchError(
            f"{args.run}/config.json cannot take reflow's changes ({exc})"
        ) from None
    new.validate()
    check_solve_memory(
        info,
        min(args.n_pairs, PAIR_BATCH),
        solver=args.solver,
        steps=args.solver_steps,
        extra=8 * 4 * args.n_pairs * info.dim,  # x0, x1 and their copies in the archive
        what=f"--n-pairs {args.n_pairs} pairs of {info.dim} values",
    )
