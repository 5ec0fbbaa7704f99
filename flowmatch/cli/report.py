"""``flowmatch report``: one self-contained HTML page of a run (config, loss, quality, figures)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from flowmatch.cli.common import add_device_flags, add_run_dir, load_from_args
from flowmatch.cli.limits import check_solve_memory
from flowmatch.cli.outputs import check_output, os_error_message, run_folder_of
from flowmatch.errors import FlowmatchError, check_int, check_seed

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``report`` subparser."""
    p = sub.add_parser(name, help="write one self-contained HTML page of a run (report.html)")
    add_run_dir(p)
    p.add_argument(
        "--out", type=Path, help="new .html file (default: RUN_DIR/report.html, never replaced)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the report a previous run left there"
    )
    p.add_argument(
        "--n", type=int, default=1000, help="samples and held-out points of the page (1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="noise and data seed (0)")
    p.add_argument(
        "--no-eval",
        action="store_true",
        help="without RUN_DIR/eval.json, leave the W2/MMD table out instead of computing a "
        "small one",
    )
    add_device_flags(p)


def run(args: argparse.Namespace) -> None:
    """Build the page in memory, then create ``--out`` in one piece and print its path."""
    from flowmatch.cli.eval import DRAWS_FILE, EVAL_FILE
    from flowmatch.evaluation.eval_table import read_evaluation
    from flowmatch.evaluation.samples import CURVE_STEPS
    from flowmatch.metrics import W2_BYTES
    from flowmatch.viz.report import REPORT_FILE, build_report

    check_int(args.n, "--n", minimum=2)
    check_seed(args.seed, optional=True)
    flow, info = load_from_args(args)  # first: a missing or corrupt run is what to report
    out = args.out if args.out is not None else args.run / REPORT_FILE
    _check_out(out, args.run, args.overwrite, REPORT_FILE)
    eval_file = args.run / EVAL_FILE
    evaluation = read_evaluation(eval_file) if eval_file.is_file() else None
    draws_file = args.run / DRAWS_FILE
    headline = read_evaluation(draws_file) if draws_file.is_file() else None
    check_solve_memory(
        info,
        args.n,
        args.device,
        solver="rk4",
        steps=max(CURVE_STEPS),
        states=82,  # the figures' trajectory of 41 states, and its stacked copy
        extra=W2_BYTES * args.n * args.n,  # the exact W2's cost matrix and plan
        what=f"--n {args.n} samples and held-out points of {info.dim} values",
    )
    text = build_report(
        flow,
        info,
        evaluation=evaluation,
        headline=headline,
        evaluate=not args.no_eval,
        n=args.n,
        seed=args.seed,
    )
    data = text.encode("utf-8")
    try:
        if args.overwrite:
            from flowmatch.storage import atomic_write

            atomic_write(out, data)  # the old report or the new one, never half of either
        else:
            from flowmatch.storage import write_new

            write_new(out, data)  # refused if a report appeared meanwhile
    except OSError as exc:
        exc.filename, exc.filename2 = str(out), None  # the name the user gave, not the temporary's
        raise FlowmatchError(os_error_message(exc, writing=True, nbytes=len(data))) from None
    print(out)


def _check_out(out: Path, run: Path, overwrite: bool, name: str) -> None:
    """Refuse an ``--out`` that is not a new .html file (or, with ``--overwrite``, a file to
    replace), or that lies inside a run folder other than as that run's own report."""
    if out.suffix.lower() != ".html":
        raise FlowmatchError(f"--out must end in .html, got {out}")
    if not os.path.lexists(out):
        check_output(out, ".html", in_run=(name,))
    elif not overwrite:
        raise FlowmatchError(
            f"{out} already exists; add --overwrite to replace it, or choose another --out"
        )
    elif not out.is_file():
        raise FlowmatchError(f"--out {out} is not a file; remove it or choose another --out")
    elif not os.access(out.parent, os.W_OK | os.X_OK):
        raise FlowmatchError(
            f"folder {out.parent} is not writable (permission denied); choose another --out"
        )
    holder = run_folder_of(out.parent)
    if holder is not None and (holder != run.resolve() or out.name != name):
        raise FlowmatchError(
            f"--out {out} is inside the run folder {holder}, where only its own {name} may go; "
            "choose a path outside it"
        )
