"""``flowmatch demo``: train on a built-in 2-D set, evaluate, plot and report, in one command."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from flowmatch.errors import check_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``demo`` subparser."""
    from flowmatch.data import TOY_DATASETS

    p = sub.add_parser(name, help="train on a built-in 2-D set, evaluate, plot and write a report")
    p.add_argument(
        "--data", default="moons", choices=list(TOY_DATASETS), help="built-in 2-D set (moons)"
    )
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps (4000)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")


def run(args: argparse.Namespace) -> None:
    """``flowmatch train``, ``eval``, ``plot`` and ``report`` in turn, into one run folder."""
    from flowmatch.cli.main import run_command

    steps = check_int(args.steps, "--steps")
    out = args.out or Path("runs") / f"demo-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"training flow matching on '{args.data}' for {steps} steps into {out}")
    run_command(["train", "--data", args.data, "--steps", str(steps), "--out", str(out)])
    print("\nevaluating against 2000 fresh draws of the data:")
    run_command(["eval", str(out), "--json", str(out / "eval.json")])
    print("\nfigures:")
    run_command(["plot", str(out)])
    print("\nreport (one self-contained page; open it in a browser):")
    run_command(["report", str(out)])
    print(f"\ndone: run folder {out}")
