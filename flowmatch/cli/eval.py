"""``flowmatch eval``: W2 and MMD of a run's samples at several solver settings.

Beside them: the data floor (what a perfect model scores), the W2-versus-NFE curve of a
fixed-grid solver, the fewest steps within a tolerance of dopri5, and the straightness.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.cli.common import (
    add_device_flags,
    add_run_dir,
    add_time_grid_flag,
    fixed_grid_solvers,
    load_from_args,
)
from flowmatch.cli.eval_oracle import add_oracle_flags, check_oracle, check_oracle_args, eval_oracle
from flowmatch.cli.limits import check_solve_memory
from flowmatch.cli.outputs import check_output, save_json
from flowmatch.errors import FlowmatchError, check_int, check_points, check_seed
from flowmatch.evaluation.eval_table import DRAWS_FILE, EVAL_FILE

if TYPE_CHECKING:
    import torch

    from flowmatch.evaluation.samples import SolverSetting
    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["DRAWS_FILE", "EVAL_FILE", "add_parser", "run"]


MAX_DRAWS = 10_000
"""The most ``--draws``: beyond it a typo (``--draws 1000000000``) would run for years."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``eval`` subparser."""
    p = sub.add_parser(name, help="W2 and MMD against held-out data at several NFE")
    add_run_dir(p)
    p.add_argument("--data", type=Path, help="held-out data file (default: the run's own)")
    p.add_argument("--n", type=int, default=2000, help="held-out points for built-ins (2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (0)")
    p.add_argument(
        "--draws",
        type=int,
        default=1,
        help="independent draws of held-out points, sampling noise and the floor's data; "
        "every W2 (and the floor's) is their mean, with the spread beside it (default: 1, "
        f"at most {MAX_DRAWS})",
    )
    p.add_argument(
        "--json",
        type=Path,
        help=f"also write the table as JSON to this new file (in the run folder: {EVAL_FILE} or "
        f"{DRAWS_FILE} only)",
    )
    p.add_argument(
        "--rows",
        help="only these solver settings, e.g. euler:100,heun:2 (an adaptive solver takes no "
        "steps: dopri5); without dopri5 add --no-curve (default: the full table)",
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
    add_oracle_flags(p)
    add_device_flags(p)


def _reference(
    args: argparse.Namespace, info: RunInfo, draw: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out data, and an independent draw of real data of the same size for the floor.

    Draw k takes the seeds ``seed + 2k`` (held-out points, and the sampling noise in
    :func:`run`) and ``seed + 2k + 1`` (the floor's draw), so draw 0 is the single draw of
    earlier releases and no two draws share a seed. A data file is the held-out set of
    every draw.
    """
    import torch

    from flowmatch.data import load_array

    seed = _draw_seed(args, draw)
    dataset = info.config.dataset()
    if args.data is not None:
        ref = check_points(load_array(args.data), str(args.data), dim=info.dim)
        return ref, dataset.iid_sample(ref.shape[0], torch.Generator().manual_seed(seed))
    ref = dataset.held_out(args.n, torch.Generator().manual_seed(seed))
    floor = dataset.iid_sample(ref.shape[0], torch.Generator().manual_seed(seed + 1))
    return ref, floor


def _draw_seed(args: argparse.Namespace, draw: int) -> int:
    """The seed of draw ``draw``'s held-out points and sampling noise (its floor: + 1)."""
    return args.seed + 2 * draw


def run(args: argparse.Namespace) -> None:
    """Print the table (and the curve), and write it as JSON to ``--json`` if asked."""
    if args.json is not None:
        check_output(args.json, ".json", flag="--json", in_run=(EVAL_FILE, DRAWS_FILE))
    check_oracle_args(args)
    if args.data is None:
        check_int(args.n, "--n", minimum=2)
    check_seed(args.seed, optional=True)
    if not args.tolerance >= 0:
        raise FlowmatchError(f"--tolerance must be >= 0 (e.g. 0.05 for 5%), got {args.tolerance}")
    draws = check_int(args.draws, "--draws", minimum=1)
    if draws > MAX_DRAWS:  # each draw samples and scores every row anew
        raise FlowmatchError(
            f"--draws {draws} is more than {MAX_DRAWS} (each draw samples and scores every row "
            "anew; the error of the mean falls only as 1/sqrt(draws)); ask for fewer"
        )
    settings = _settings(args)
    flow, info = load_from_args(args)
    if args.rows is not None and not flow.integrates_ode:
        raise FlowmatchError(
            f"--rows picks ODE solvers, but {info.run_dir} is a flow of layers with no ODE to "
            "solve; leave --rows out"
        )
    if args.oracle:
        check_oracle(args, flow, info)
    for setting in settings:  # a --rows step count that cannot fit
        check_solve_memory(
            info, 1, args.device, solver=setting.solver, steps=setting.steps, what="--rows"
        )
    if args.data is None:
        _check_memory(args, info, args.n, f"--n {args.n} held-out points")
    want_curve = not args.no_curve and flow.integrates_ode
    ref, rows, curve, floor = _evaluate_draws(args, flow, info, settings, draws, want_curve)
    spread = draws > 1
    print(f"run {info.run_dir} (step {info.step}), {ref.shape[0]} held-out points")
    if spread:
        print(
            f"W2: the mean of {draws} independent draws (held-out points, sampling noise, the "
            "floor's data), sd their spread; MMD: the first draw's"
        )
    sd = f"{'sd':>8}" if spread else ""
    print(f"{'solver':<10}{'steps':>6}{'NFE':>6}{'W2':>10}{sd}{'MMD':>11}{'time s':>9}")
    for r in rows:
        steps = "-" if r.steps is None else str(r.steps)
        sd = f"{r.w2_sd:>8.4f}" if spread else ""
        print(f"{r.solver:<10}{steps:>6}{r.nfe:>6}{r.w2:>10.4f}{sd}{r.mmd:>11.2e}{r.seconds:>9.2f}")
    sd = f"{floor['w2_sd']:>8.4f}" if spread else ""
    print(
        f"{'data floor':<22}{floor['w2']:>10.4f}{sd}{floor['mmd']:>11.2e}   (independent real data)"
    )
    extra = _eval_curve(args, flow, ref, rows, curve) if want_curve else {}
    if args.oracle:
        extra["oracle"] = eval_oracle(args, flow, info, ref)
    if args.json is not None:
        out = {
            "rows": [r.to_dict() for r in rows],
            "floor": floor,
            "n": ref.shape[0],
            "time_grid": args.time_grid,
            **({"draws": draws} if spread else {}),
            **extra,
        }
        save_json(args.json, out)


def _settings(args: argparse.Namespace) -> tuple[SolverSetting, ...]:
    """The table's solver settings: ``--rows``, or the full table; the curve needs dopri5."""
    from flowmatch.evaluation.samples import DEFAULT_SETTINGS, parse_settings

    if args.rows is None:
        return DEFAULT_SETTINGS
    settings = parse_settings(args.rows)
    if not args.no_curve and all(s.solver != "dopri5" for s in settings):
        raise FlowmatchError(
            "the W2-versus-NFE curve is read against dopri5: add dopri5 to --rows, or pass "
            "--no-curve"
        )
    return settings


def _evaluate_draws(
    args: argparse.Namespace,
    flow: Flow,
    info: RunInfo,
    settings: tuple[SolverSetting, ...],
    draws: int,
    want_curve: bool,
) -> tuple[torch.Tensor, list[Any], list[Any], dict[str, Any]]:
    """The first draw's held-out points, and the table, curve and floor over ``draws`` draws.

    Every W2 is the mean over the draws (the model's and the floor's alike: the same points,
    the same averaging); MMD is the first draw's, as are the straightness and ``--oracle``
    that :func:`run` computes on the returned points.
    """
    from flowmatch.evaluation.samples import evaluate_flow, mean_over_draws, w2_nfe_curve
    from flowmatch.metrics import mmd, wasserstein2_many

    tables, curves, floor_pairs = [], [], []
    for k in range(draws):
        ref_k, other = _reference(args, info, k)
        if k == 0:
            ref = ref_k
            if args.data is not None:
                _check_memory(args, info, ref.shape[0], f"{ref.shape[0]} points of {args.data}")
            floor_mmd = mmd(other, ref)
        floor_pairs.append((other, ref_k))
        seed, ref_k = _draw_seed(args, k), ref_k.to(flow.device)
        rows = evaluate_flow(
            flow, ref_k, settings=settings, seed=seed, time_grid=args.time_grid, with_mmd=k == 0
        )
        tables.append(rows)
        if want_curve:
            curves.append(
                w2_nfe_curve(
                    flow,
                    ref_k,
                    solver=args.curve_solver,
                    time_grid=args.time_grid,
                    seed=seed,
                    known=rows,
                )
            )
    curve = mean_over_draws(curves) if want_curve else []
    floors = wasserstein2_many(floor_pairs)  # one batch on threads, after the draws' samples
    return ref, mean_over_draws(tables), curve, _floor(floors, floor_mmd)


def _floor(w2s: list[float], mmd: float) -> dict[str, Any]:
    """The floor's JSON: W2 the mean over the draws (with their spread for several), MMD."""
    import statistics

    if len(w2s) == 1:
        return {"w2": w2s[0], "mmd": mmd}
    return {
        "w2": statistics.fmean(w2s),
        "mmd": mmd,
        "w2_sd": statistics.stdev(w2s),
        "w2_draws": w2s,
    }


def _check_memory(args: argparse.Namespace, info: RunInfo, n: int, what: str) -> None:
    """Refuse ``n`` reference points whose samples and exact W2 cannot fit in memory."""
    from flowmatch.evaluation.samples import CURVE_STEPS
    from flowmatch.metrics import W2_BYTES

    w2 = W2_BYTES * n * n
    what += f" (the exact W2 holds {n} x {n} matrices)"
    check_solve_memory(
        info, n, args.device, solver="rk4", steps=max(CURVE_STEPS), extra=w2, what=what
    )


def _w2_row(row: Any) -> dict[str, Any]:
    """A curve row as JSON, without the MMD that curves skip."""
    return {k: v for k, v in row.to_dict().items() if k != "mmd"}


def _eval_curve(
    args: argparse.Namespace, flow: Flow, ref: torch.Tensor, rows: list[Any], curve: list[Any]
) -> dict[str, Any]:
    """Print the W2-versus-NFE curve, the recommended step count and the straightness."""
    from flowmatch.evaluation.samples import flow_path_statistics, recommend_steps

    converged = next(r for r in rows if r.solver == "dopri5")
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
            "converged": converged.to_dict(),
        },
        "recommended": None if best is None else _w2_row(best),
        "tolerance": args.tolerance,
        "straightness": stats,
    }
