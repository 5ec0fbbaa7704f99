"""``flowmatch demo``: train on a built-in 2-D set, evaluate, plot and report, in one command."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from flowmatch.errors import check_int

__all__ = ["DRAWS", "HEADLINE", "LR", "STEPS", "WIDTH", "add_parser", "result_lines", "run"]

STEPS = 8000
"""Optimizer steps of the demo's training."""

WIDTH = 128
"""Hidden units per layer of the demo's MLP: a 128-wide step costs about half a 256-wide one,
so the demo takes twice the steps of the 256-wide default in the same time."""

LR = 3e-3
"""Peak learning rate of the demo's training. With WIDTH and STEPS it scored closest to the
floor at 100 NFE of the recipes of one training cost (chosen on training seeds 0 and 1,
reported on 2 to 4: docs/benchmarks.md, "The demo's recipe")."""

DRAWS = 10
"""Independent draws over which the demo reports its two headline rows (and their floor): on
moons one draw's W2 of 2000 points varies by about 25%, the model's and the floor's alike and
nearly independently (the split of the points between the two moons varies), so the ratio of
the means of 10 draws carries a standard error of about 0.15, which the demo prints. A draw of
these two rows costs ~2 CPU s, mostly three exact W2 (docs/benchmarks.md, "The demo's
recipe")."""

HEADLINE = "euler:100,heun:2"
"""The rows the demo reports over ``DRAWS`` draws: 100 NFE, and the few-step setting of the
figures (:data:`~flowmatch.evaluation.samples.FEW_STEP`)."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``demo`` subparser."""
    from flowmatch.data import TOY_DATASETS

    p = sub.add_parser(name, help="train on a built-in 2-D set, evaluate, plot and write a report")
    p.add_argument(
        "--data", default="moons", choices=list(TOY_DATASETS), help="built-in 2-D set (moons)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=STEPS,
        help=f"optimizer steps ({STEPS}; width {WIDTH}, learning rate {LR})",
    )
    p.add_argument(
        "--draws",
        type=int,
        default=DRAWS,
        help=f"independent draws of the two headline rows and their floor ({DRAWS}; 1 is "
        "quicker but its ratio is noisy)",
    )
    p.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")


def result_lines(table: dict[str, Any]) -> list[str]:
    """The demo's result from ``flowmatch eval``'s JSON table: W2 at 100 NFE and with the
    few-step solver of the figures, each beside the data floor; for a table of several draws,
    the ratio of the means with its standard error.

    Example:
        >>> row = {"solver": "euler", "steps": 100, "nfe": 100, "w2": 0.11}
        >>> few = {"solver": "heun", "steps": 2, "nfe": 4, "w2": 0.2, "w2_draws": [0.18, 0.22]}
        >>> floor = {"w2": 0.1, "w2_draws": [0.12, 0.08]}
        >>> for line in result_lines({"rows": [row, few], "floor": floor}):
        ...     print(line)
        100 NFE (euler, 100 steps): W2 0.1100 = 1.10x the data floor 0.1000
          4 NFE (heun, 2 steps):    W2 0.2000 = 2.00x +- 0.60 the data floor 0.1000
    """
    from flowmatch.evaluation.eval_table import ratio_to_floor
    from flowmatch.evaluation.samples import FEW_STEP

    floor = table["floor"]
    picks = [("euler", 100), (FEW_STEP.solver, FEW_STEP.steps)]
    rows = [r for p in picks for r in table["rows"] if (r["solver"], r["steps"]) == p]
    labels = [f"{r['nfe']:>3} NFE ({r['solver']}, {r['steps']} steps):" for r in rows]
    width = max(map(len, labels), default=0)
    lines = []
    for label, r in zip(labels, rows, strict=True):
        ratio, error = ratio_to_floor(r, floor)  # draw k against the floor of draw k
        shown = f"{ratio:.2f}x" + ("" if error is None else f" +- {error:.2f}")
        lines.append(
            f"{label:<{width}} W2 {r['w2']:.4f} = {shown} the data floor {floor['w2']:.4f}"
        )
    return lines


def run(args: argparse.Namespace) -> None:
    """``flowmatch train``, ``eval``, ``plot`` and ``report`` in turn, into one run folder."""
    from flowmatch.cli.eval import DRAWS_FILE, EVAL_FILE
    from flowmatch.cli.main import run_command

    steps = check_int(args.steps, "--steps")
    draws = check_int(args.draws, "--draws", minimum=1)
    out = args.out or Path("runs") / f"demo-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    start = time.perf_counter()
    print(
        f"training flow matching on '{args.data}' for {steps} steps ({WIDTH}-wide MLP) into {out}"
    )
    train = ["--data", args.data, "--steps", str(steps), "--width", str(WIDTH), "--lr", str(LR)]
    run_command(["train", *train, "--out", str(out)])
    print("\nevaluating against 2000 fresh points of the data:")
    run_command(["eval", str(out), "--json", str(out / EVAL_FILE)])
    what = f"the means over {draws} independent draws" if draws > 1 else "one draw"
    print(f"\nthe two headline rows and the floor, {what}:")
    rows = ["--rows", HEADLINE, "--no-curve", "--draws", str(draws)]
    run_command(["eval", str(out), *rows, "--json", str(out / DRAWS_FILE)])
    print("\nfigures:")
    run_command(["plot", str(out)])
    print("\nreport (one self-contained page; open it in a browser):")
    run_command(["report", str(out)])
    if (out / DRAWS_FILE).is_file():
        print(f"\n{args.data}, {steps} steps, samples in plots/samples.png; W2 and floor: {what}")
        for line in result_lines(json.loads((out / DRAWS_FILE).read_text())):
            print("  " + line)
    print(f"\ndone in {time.perf_counter() - start:.0f} s: run folder {out}")
