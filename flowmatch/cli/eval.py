"""``flowmatch eval``: W2 and MMD of a run's samples at several solver settings.

Beside them: the data floor (what a perfect model scores), the W2-versus-NFE curve of a
fixed-grid solver, the fewest steps within a tolerance of dopri5, and the straightness.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.cli.common import (
    add_device_flags,
    add_run_dir,
    add_time_grid_flag,
    fixed_grid_solvers,
    load_from_args,
)
from flowmatch.cli.limits import check_seed, check_solve_memory
from flowmatch.cli.outputs import check_output, save_json
from flowmatch.errors import FlowmatchError, check_int, check_points

if TYPE_CHECKING:
    import torch

    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["EVAL_FILE", "add_parser", "run"]

EVAL_FILE = "eval.json"
"""The one file ``--json`` may create inside the run folder it evaluates (``demo`` does)."""

W2_BYTES = 16
"""Memory per pair of points of the exact W2: its float64 cost matrix and transport plan."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``eval`` subparser."""
    p = sub.add_parser(name, help="W2 and MMD against held-out data at several NFE")
    add_run_dir(p)
    p.add_argument("--data", type=Path, help="held-out data file (default: the run's own)")
    p.add_argument("--n", type=int, default=2000, help="held-out points for built-ins (2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (0)")
    p.add_argument(
        "--json",
        type=Path,
        help="also write the table as JSON to this new file (in the run folder: eval.json only)",
    )
    add_time_grid_flag(p)
    p.add_argument(
        "--curve-solver",
        default="euler",
        choices=fixed_grid_solvers(),
        help="fixed-grid solver of the W2-versus-NFE curve (default: euler)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="recommend the fewest steps with W2 <= (1 + tolerance) x dopri5's (default: 0.05)",
    )
    p.add_argument(
        "--no-curve", action="store_true", help="skip the W2-versus-NFE curve and straightness"
    )
    add_device_flags(p)


def _reference(args: argparse.Namespace, info: RunInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out data, and an independent draw of real data of the same size for the floor."""
    import torch

    from flowmatch.data import get_dataset, load_array

    g = torch.Generator().manual_seed(args.seed)
    if args.data is not None:
        ref = check_points(load_array(args.data), str(args.data), dim=info.dim)
        return ref, get_dataset(info.config.data).iid_sample(ref.shape[0], g)
    dataset = get_dataset(info.config.data)
    ref = dataset.held_out(args.n, g)
    floor = dataset.iid_sample(ref.shape[0], torch.Generator().manual_seed(args.seed + 1))
    return ref, floor


def run(args: argparse.Namespace) -> None:
    """Print the table (and the curve), and write it as JSON to ``--json`` if asked."""
    from flowmatch.evaluation.samples import evaluate_flow
    from flowmatch.metrics import mmd, wasserstein2

    if args.json is not None:
        check_output(args.json, ".json", flag="--json", in_run=(EVAL_FILE,))
    if args.data is None:
        check_int(args.n, "--n", minimum=2)
    check_seed(args.seed)
    if not args.tolerance >= 0:
        raise FlowmatchError(f"--tolerance must be >= 0 (e.g. 0.05 for 5%), got {args.tolerance}")
    flow, info = load_from_args(args)
    if args.data is None:
        _check_memory(args, info, args.n, f"--n {args.n} held-out points")
    ref, other = _reference(args, info)
    if args.data is not None:
        _check_memory(args, info, ref.shape[0], f"{ref.shape[0]} points of {args.data}")
    floor_w2, floor_mmd = wasserstein2(other, ref), mmd(other, ref)
    rows = evaluate_flow(flow, ref.to(flow.device), seed=args.seed, time_grid=args.time_grid)
    print(f"run {info.run_dir} (step {info.step}), {ref.shape[0]} held-out points")
    print(f"{'solver':<10}{'steps':>6}{'NFE':>6}{'W2':>10}{'MMD':>11}{'time s':>9}")
    for r in rows:
        steps = "-" if r.steps is None else str(r.steps)
        print(f"{r.solver:<10}{steps:>6}{r.nfe:>6}{r.w2:>10.4f}{r.mmd:>11.2e}{r.seconds:>9.2f}")
    print(f"{'data floor':<22}{floor_w2:>10.4f}{floor_mmd:>11.2e}   (independent real data)")
    extra = {} if args.no_curve else _eval_curve(args, flow, ref, rows)
    if args.json is not None:
        out = {
            "rows": [dataclasses.asdict(r) for r in rows],
            "floor": {"w2": floor_w2, "mmd": floor_mmd},
            "n": ref.shape[0],
            "time_grid": args.time_grid,
            **extra,
        }
        save_json(args.json, out)


def _check_memory(args: argparse.Namespace, info: RunInfo, n: int, what: str) -> None:
    """Refuse ``n`` reference points whose samples and exact W2 cannot fit in memory."""
    from flowmatch.evaluation.samples import CURVE_STEPS

    w2 = W2_BYTES * n * n
    what += f" (the exact W2 holds {n} x {n} matrices)"
    check_solve_memory(
        info, n, args.device, solver="rk4", steps=max(CURVE_STEPS), extra=w2, what=what
    )


def _w2_row(row: Any) -> dict[str, Any]:
    """A curve row as JSON, without the MMD that curves skip."""
    return {k: v for k, v in dataclasses.asdict(row).items() if k != "mmd"}


def _eval_curve(
    args: argparse.Namespace, flow: Flow, ref: torch.Tensor, rows: list[Any]
) -> dict[str, Any]:
    """Print the W2-versus-NFE curve, the recommended step count and the straightness."""
    from flowmatch.evaluation.samples import flow_path_statistics, recommend_steps, w2_nfe_curve

    if not flow.integrates_ode:  # a stack of layers: no solver to tune, no path to measure
        return {}
    converged = next(r for r in rows if r.solver == "dopri5")
    curve = w2_nfe_curve(
        flow,
        ref.to(flow.device),
        solver=args.curve_solver,
        time_grid=args.time_grid,
        seed=args.seed,
        known=rows,
    )
    print(
        f"\nW2 vs NFE ({args.curve_solver}, {args.time_grid} time grid); converged: dopri5 "
        f"W2 {converged.w2:.4f} at NFE {converged.nfe}"
    )
    print(f"{'steps':>6}{'NFE':>6}{'W2':>10}{'/ dopri5':>10}")
    for r in curve:
        print(f"{r.steps:>6}{r.nfe:>6}{r.w2:>10.4f}{r.w2 / converged.w2:>10.3f}")
    best = recommend_steps(curve, converged.w2, args.tolerance)
    if best is None:
        print(
            f"recommended: none of these step counts is within {args.tolerance:.0%} of dopri5; "
            "use dopri5"
        )
    else:
        print(
            f"recommended: {args.curve_solver} with {best.steps} step{'s' * (best.steps > 1)} "
            f"on the {args.time_grid} "
            f"grid (NFE {best.nfe}), W2 {best.w2:.4f} within {args.tolerance:.0%} of dopri5"
        )
    stats = flow_path_statistics(flow, ref, seed=args.seed)
    print(
        f"\nstraightness of the trajectories (rk4, NFE {stats['nfe']}, the network's units): "
        f"S = E int |v - (x1 - x0)|^2 dt = {stats['straightness']:.4f}, "
        f"S / E|x1 - x0|^2 = {stats['normalized_straightness']:.4f}"
    )
    print(
        f"path energy {stats['path_energy']:.4f}, W2^2(source, data) "
        f"{stats['w2_squared_source_data']:.4f}, "
        f"normalized path energy {stats['normalized_path_energy']:.4f}"
    )
    return {
        "curve": {
            "solver": args.curve_solver,
            "rows": [_w2_row(r) for r in curve],
            "converged": dataclasses.asdict(converged),
        },
        "recommended": None if best is None else _w2_row(best),
        "tolerance": args.tolerance,
        "straightness": stats,
    }
