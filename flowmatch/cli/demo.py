"""``flowmatch demo``: train on a built-in 2-D set, evaluate, plot and report, in one command."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from flowmatch.errors import check_int

__all__ = ["add_parser", "result_lines", "run"]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``demo`` subparser."""
    from flowmatch.data import TOY_DATASETS

    p = sub.add_parser(name, help="train on a built-in 2-D set, evaluate, plot and write a report")
    p.add_argument(
        "--data", default="moons", choices=list(TOY_DATASETS), help="built-in 2-D set (moons)"
    )
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps (4000)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")


def result_lines(table: dict[str, Any]) -> list[str]:
    """The demo's result from ``flowmatch eval``'s JSON table: W2 at 100 NFE and with the
    few-step solver of the figures, each beside the data floor.

    Example:
        >>> row = {"solver": "euler", "steps": 100, "nfe": 100, "w2": 0.11}
        >>> few = {"solver": "heun", "steps": 2, "nfe": 4, "w2": 0.2}
        >>> for line in result_lines({"rows": [row, few], "floor": {"w2": 0.1}}):
        ...     print(line)
        100 NFE (euler, 100 steps): W2 0.1100 = 1.10x the data floor 0.1000
          4 NFE (heun, 2 steps):    W2 0.2000 = 2.00x the data floor 0.1000
    """
    from flowmatch.evaluation.samples import FEW_STEP

    floor = table["floor"]["w2"]
    picks = [("euler", 100), (FEW_STEP.solver, FEW_STEP.steps)]
    rows = [r for p in picks for r in table["rows"] if (r["solver"], r["steps"]) == p]
    labels = [f"{r['nfe']:>3} NFE ({r['solver']}, {r['steps']} steps):" for r in rows]
    width = max(map(len, labels), default=0)
    return [
        f"{label:<{width}} W2 {r['w2']:.4f} = {r['w2'] / floor:.2f}x the data floor {floor:.4f}"
        for label, r in zip(labels, rows, strict=True)
    ]


def run(args: argparse.Namespace) -> None:
    """``flowmatch train``, ``eval``, ``plot`` and ``report`` in turn, into one run folder."""
    from flowmatch.cli.main import run_command

    steps = check_int(args.steps, "--steps")
    out = args.out or Path("runs") / f"demo-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    start = time.perf_counter()
    print(f"training flow matching on '{args.data}' for {steps} steps into {out}")
    run_command(["train", "--data", args.data, "--steps", str(steps), "--out", str(out)])
    print("\nevaluating against 2000 fresh draws of the data:")
    run_command(["eval", str(out), "--json", str(out / "eval.json")])
    print("\nfigures:")
    run_command(["plot", str(out)])
    print("\nreport (one self-contained page; open it in a browser):")
    run_command(["report", str(out)])
    if (out / "eval.json").is_file():
        print(f"\n{args.data}, {steps} steps, samples drawn in plots/samples.png:")
        for line in result_lines(json.loads((out / "eval.json").read_text())):
            print("  " + line)
    print(f"\ndone in {time.perf_counter() - start:.0f} s: run folder {out}")
