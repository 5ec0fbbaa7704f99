"""``flowmatch eval --oracle``: the network against the closed-form optimal velocity v* of its
training points (relative error per t-bin, FM loss gap, memorization)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.cli.limits import check_solve_memory
from flowmatch.cli.outputs import check_output
from flowmatch.errors import FlowmatchError, check_int

if TYPE_CHECKING:
    import torch

    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["add_oracle_flags", "check_oracle", "check_oracle_args", "eval_oracle"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
"""Formats of ``--oracle-figure``."""
MAX_ORACLE_BINS = 1000
"""The most ``--oracle-bins``: rows of a table to read, each a pass over the held-out points."""


def add_oracle_flags(p: argparse.ArgumentParser) -> None:
    """Add ``--oracle`` and its options to ``eval``'s parser."""
    p.add_argument(
        "--oracle",
        action="store_true",
        help="compare the network with the closed-form optimal velocity v* of its training "
        "points: relative error per t-bin, FM loss gap, memorization",
    )
    p.add_argument(
        "--oracle-points",
        type=int,
        default=10000,
        help="training points of v* for a built-in set, drawn fresh (default: 10000); a data "
        "file's training rows are used as they are",
    )
    p.add_argument(
        "--oracle-bins",
        type=int,
        default=10,
        help=f"t-bins of the --oracle table (default: 10, at most {MAX_ORACLE_BINS})",
    )
    p.add_argument(
        "--oracle-samples",
        type=int,
        default=500,
        help="samples of v* and of the network for the memorization distances (default: 500)",
    )
    p.add_argument(
        "--oracle-figure",
        type=Path,
        help="write the --oracle error per t-bin as a figure to this new .png/.pdf/.svg file",
    )


def check_oracle_args(args: argparse.Namespace) -> None:
    """Check the --oracle options before any work."""
    if args.oracle_figure is not None:
        if not args.oracle:
            raise FlowmatchError("--oracle-figure needs --oracle")
        check_output(args.oracle_figure, *FIGURE_SUFFIXES, flag="--oracle-figure")
    if args.oracle:
        check_int(args.oracle_points, "--oracle-points", minimum=1)
        check_int(args.oracle_bins, "--oracle-bins", minimum=1)
        if args.oracle_bins > MAX_ORACLE_BINS:  # a pass over the held-out points each
            raise FlowmatchError(
                f"--oracle-bins {args.oracle_bins} is more than the table's "
                f"{MAX_ORACLE_BINS} rows (each bin is a pass over the held-out points); "
                "ask for fewer"
            )
        check_int(args.oracle_samples, "--oracle-samples", minimum=0)


def check_oracle(args: argparse.Namespace, flow: Flow, info: RunInfo) -> None:
    """Refuse --oracle where v* of the linear path from N(0, I) is not what was trained, or
    where its point counts cannot fit in memory."""
    from flowmatch.flows.continuous import FlowModel

    cfg = info.config
    why = None
    if not isinstance(flow, FlowModel) or cfg.method != "fm":
        why = f"it was trained with --method {cfg.method}, not a continuous flow"
    elif cfg.path != "linear" or cfg.sigma_min != 0:
        why = f"its path is --path {cfg.path} --sigma-min {cfg.sigma_min}, not the plain linear"
    elif cfg.source != "gaussian" or cfg.logit:
        why = "its source is not N(0, I) in standardized units (or it has a logit map)"
    elif flow.velocity.condition is not None and flow.velocity.condition.kind != "class":
        why = "v* is only available for class labels, not condition vectors"
    if why is not None:
        raise FlowmatchError(
            f"--oracle needs the linear path from N(0, I) (v* in closed form), but {why}"
        )
    for flag in ("--oracle-points", "--oracle-samples"):
        n = getattr(args, flag[2:].replace("-", "_"))
        check_solve_memory(info, n, args.device, what=f"{flag} {n}")


def eval_oracle(
    args: argparse.Namespace, flow: Flow, info: RunInfo, ref: torch.Tensor
) -> dict[str, Any]:
    """Print the network against v* of its training points and draw the figure if asked."""
    import torch

    from flowmatch.evaluation.oracle import oracle_report

    dataset = info.config.dataset()
    g = torch.Generator().manual_seed(args.seed)
    held_cond = None if args.data is not None else dataset.held_out_batch(args.n, g)[1]
    train = getattr(dataset, "train_data", None)
    if train is not None:  # a finite training set: exactly the v* that training approaches
        train_cond, what = dataset.train_cond, "training rows"
    else:  # a built-in distribution: v* of a fresh draw, exact only as the draw grows
        g = torch.Generator().manual_seed(args.seed + 2)
        train, train_cond = dataset.sample_batch(args.oracle_points, g)
        what = "points drawn from the data set (an estimate of its v*)"
    if info.config.coupling != "independent":
        what += f"; note: --coupling {info.config.coupling} trains towards another field"
    if train_cond is not None and flow.velocity.condition is None:
        train_cond = held_cond = None
    report = oracle_report(
        flow,
        train,
        ref.to(flow.device),
        train_cond=train_cond,
        held_out_cond=held_cond,
        bins=args.oracle_bins,
        samples=args.oracle_samples,
        seed=args.seed,
    )
    print(
        f"\noptimal velocity v* of {train.shape[0]} {what}, in the network's units: "
        f"E|v - v*|^2 / E|v*|^2 over {ref.shape[0]} held-out points"
    )
    print(f"{'t from':>8}{'t to':>7}{'rel. error':>12}{'E|v-v*|^2':>12}{'E|v*|^2':>11}")
    for b in report.bins:
        print(
            f"{b.t_lo:>8.2f}{b.t_hi:>7.2f}{b.relative_error:>12.4f}{b.mse:>12.4g}"
            f"{b.oracle_norm:>11.4g}"
        )
    loss = report.loss
    print(
        f"FM loss on one batch of {loss.n} training pairs: network {loss.network:.4f}, "
        f"v* {loss.oracle:.4f} (the minimum), gap {loss.gap:.4f}; expected gap "
        f"E|v - v*|^2 / D = {loss.expected_gap:.4f}, expected minimum {loss.floor:.4f}"
    )
    mem = report.memorization
    if mem is not None:
        print(
            f"median distance to the nearest training point ({mem.n} samples, data units): "
            f"v* {mem.oracle_samples:.4g}, network {mem.network_samples:.4g}, "
            f"held-out points {mem.held_out:.4g}"
        )
    if args.oracle_figure is not None:
        from flowmatch.cli.outputs import os_error_message
        from flowmatch.viz.oracle import plot_oracle_error

        try:  # a new file: refused if it appeared meanwhile
            plot_oracle_error(
                [b.t_lo for b in report.bins],
                [b.t_hi for b in report.bins],
                [b.relative_error for b in report.bins],
                args.oracle_figure,
                title=f"{info.run_dir.name}: network vs v* of {train.shape[0]} points",
                overwrite=False,
            )
        except OSError as exc:
            raise FlowmatchError(os_error_message(exc, writing=True)) from None
        print(f"figure: {args.oracle_figure}")
    return report.to_dict()
