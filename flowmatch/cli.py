"""The ``flowmatch`` command: parse, validate, and call training, sampling, evaluation, plots.

Every subcommand reports bad input as one line ``flowmatch: error: ...`` with exit status 2,
and writes its outputs atomically, so a failed command leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from flowmatch.errors import FlowmatchError, check_points

__all__ = ["build_parser", "main"]

TRAIN_HELP = {
    "data": "built-in dataset name or a .npy/.npz/.csv file of shape (N, D)",
    "method": "training method",
    "path": "probability path from noise (t=0) to data (t=1)",
    "steps": "optimizer steps in total",
    "batch_size": "samples per step",
    "lr": "peak learning rate",
    "optimizer": "optimizer",
    "weight_decay": "weight decay",
    "warmup_steps": "linear learning-rate warm-up steps",
    "lr_decay": "learning-rate decay after warm-up",
    "min_lr_ratio": "final learning rate as a fraction of --lr",
    "grad_clip": "clip the gradient norm to this (0 disables)",
    "ema_decay": "decay of the weight EMA used for sampling",
    "time_sampling": "distribution of training times t",
    "logit_normal_mean": "mean of the logit-normal time distribution",
    "logit_normal_std": "std of the logit-normal time distribution",
    "seed": "random seed (data draws, noise, times and initialization)",
    "device": "cpu, cuda or cuda:N",
    "threads": "CPU threads (0: one for small models, torch's default otherwise)",
    "checkpoint_every": "write a checkpoint every this many steps",
    "log_every": "log the loss every this many steps",
    "holdout_fraction": "fraction of a data file held out for evaluation",
    "name": "velocity network",
    "width": "hidden units per layer",
    "depth": "hidden layers",
    "activation": "activation function",
    "time_embed_dim": "size of the time embedding",
    "time_max_freq": "largest angular frequency of the time embedding (lower: v smoother in t)",
    "num_classes": "classes K of a class-conditional model (0: from the data's labels)",
    "cond_dim": "size of condition vectors (0: from the data's conditions)",
    "cond_embed_dim": "size of the condition embedding of the mlp model",
    "channels": "channels at full resolution (--model unet)",
    "levels": "downsampling levels (--model unet)",
    "conditional": "train on the data's conditions (class labels, observations) if it has any",
    "cond_drop": "probability of dropping a sample's condition in training (for --guidance)",
    "layers": "planar layers K (--method planar)",
    "planar_activation": "gate h of the planar layers (--method planar)",
    "planar_affine": "start the planar stack with a learnable elementwise affine layer",
    "coupling": "how source and data batches are paired (minibatch OT straightens paths)",
    "ot_batch": "rows per exact OT problem of --coupling ot/class-ot (0: the whole batch)",
    "source": "distribution at t=0: gaussian, a built-in dataset or a data file",
    "pairs": "fixed (x0, x1) pairs file from flowmatch reflow; replaces the coupling",
    "init_from": "start from this run's EMA weights (reflow, distillation)",
    "distill_steps": "Euler steps of the student (--method distill)",
    "standardize": "scale data and a data source to zero mean, unit variance for the network",
    "cnf_solver": "ODE solver of the likelihood in training (--method cnf)",
    "cnf_steps": "steps of a fixed-grid --cnf-solver",
    "cnf_jitter": "move the inner grid nodes at random each step, so all t are trained",
    "cnf_atol": "absolute tolerance of an adaptive --cnf-solver",
    "cnf_rtol": "relative tolerance of an adaptive --cnf-solver",
    "cnf_divergence": "divergence in training: exact, hutchinson, or auto (exact for D <= 16)",
    "cnf_probes": "Hutchinson probes per sample (--method cnf)",
    "cnf_probe": "Hutchinson probe distribution (--method cnf)",
    "cnf_kinetic": "weight of the kinetic-energy penalty int ||v||^2 dt (RNODE; 0 disables)",
}


def _choices() -> dict[str, list[str]]:
    from flowmatch.couplings import COUPLINGS
    from flowmatch.data import DATASETS
    from flowmatch.flows import PLANAR_ACTIVATIONS
    from flowmatch.likelihood import DIVERGENCES, PROBES
    from flowmatch.models import ACTIVATIONS, MODELS
    from flowmatch.paths import PATHS
    from flowmatch.solvers import SOLVERS
    from flowmatch.training.loop import OPTIMIZERS
    from flowmatch.training.methods import METHODS
    from flowmatch.training.schedules import LR_DECAYS, TIME_SAMPLERS

    return {
        "method": list(METHODS),
        "path": list(PATHS),
        "optimizer": list(OPTIMIZERS),
        "lr_decay": list(LR_DECAYS),
        "time_sampling": list(TIME_SAMPLERS),
        "name": list(MODELS),
        "activation": list(ACTIVATIONS),
        "planar_activation": list(PLANAR_ACTIVATIONS),
        "coupling": list(COUPLINGS),
        "cnf_solver": list(SOLVERS),
        "cnf_divergence": list(DIVERGENCES),
        "cnf_probe": list(PROBES),
        "_datasets": list(DATASETS),
    }


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig (and ModelConfig) field; defaults stay None so that we can
    tell which flags the user gave."""
    from flowmatch.models import ModelConfig
    from flowmatch.training.config import TrainConfig

    choices = _choices()
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name != "model"]
    fields += list(dataclasses.fields(ModelConfig))
    defaults = {**TrainConfig().to_dict(), **dataclasses.asdict(ModelConfig())}
    for f in fields:
        flag = "--model" if f.name == "name" else "--" + f.name.replace("_", "-")
        default = defaults[f.name]
        kind = type(default)
        help_text = TRAIN_HELP.get(f.name, f.name)
        if f.name in ("data", "source"):
            help_text += f" (built-ins: {', '.join(choices['_datasets'])})"
        if kind is bool:
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{help_text} (default: {default})",
            )
            continue
        parser.add_argument(
            flag,
            dest=f.name,
            type=kind,
            default=None,
            choices=choices.get(f.name),
            help=f"{help_text} (default: {default})",
            metavar=None if f.name in choices else kind.__name__.upper(),
        )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other error
        raise FlowmatchError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flowmatch", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (or --resume an interrupted run)")
    t.add_argument("--out", type=Path, help="new run folder")
    t.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    t.add_argument(
        "--stop-after", type=int, metavar="N", help="stop after N steps, leaving a resumable run"
    )
    _add_config_flags(t)

    s = sub.add_parser("sample", help="draw samples (noise -> data)")
    s.add_argument("run", type=Path, metavar="RUN_DIR")
    s.add_argument(
        "--n", type=int, help="number of samples (default: 1000, or 64 for a --grid alone)"
    )
    s.add_argument("--out", type=Path, help="output .npy file")
    s.add_argument("--grid", type=Path, help="also (or only) write the samples as an image grid")
    _add_condition_flags(s)
    _add_solver_flags(s)
    _add_time_grid_flag(s)
    s.add_argument("--seed", type=int, default=None, help="noise seed (default: random)")

    i = sub.add_parser("invert", help="map data back to noise (data -> noise)")
    i.add_argument("run", type=Path, metavar="RUN_DIR")
    i.add_argument("--data", type=Path, required=True, help=".npy/.npz/.csv file of points")
    i.add_argument("--out", type=Path, required=True, help="output .npy file")
    _add_solver_flags(i)
    _add_time_grid_flag(i)

    e = sub.add_parser("eval", help="W2 and MMD against held-out data at several NFE")
    e.add_argument("run", type=Path, metavar="RUN_DIR")
    e.add_argument("--data", type=Path, help="held-out data file (default: the run's own)")
    e.add_argument("--n", type=int, default=2000, help="held-out points for built-ins")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", type=Path, help="also write the table as JSON here")
    _add_time_grid_flag(e)
    e.add_argument(
        "--curve-solver",
        default="euler",
        help="fixed-grid solver of the W2-versus-NFE curve (default: euler)",
    )
    e.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="recommend the fewest steps with W2 <= (1 + tolerance) x dopri5's (default: 0.05)",
    )
    e.add_argument(
        "--no-curve", action="store_true", help="skip the W2-versus-NFE curve and straightness"
    )
    _add_common(e)

    from flowmatch.likelihood_cli import add_logprob_flags

    add_logprob_flags(
        sub.add_parser("logprob", help="log-density of data: mean NLL ± stderr and bits/dim")
    )

    pl = sub.add_parser("plot", help="write PNG figures and a GIF of the path")
    pl.add_argument("run", type=Path, metavar="RUN_DIR")
    pl.add_argument("--out", type=Path, help="figure folder (default: RUN_DIR/plots)")
    pl.add_argument("--n", type=int, default=2000, help="samples to draw")
    pl.add_argument("--seed", type=int, default=0)
    _add_solver_flags(pl)

    ei = sub.add_parser(
        "eval-images",
        help="class accuracy and Fréchet distance of a class-conditional image run's samples",
    )
    ei.add_argument("run", type=Path, metavar="RUN_DIR")
    ei.add_argument(
        "--guidance", type=float, nargs="+", default=[1.0, 2.0], help="scales w (default: 1 2)"
    )
    ei.add_argument("--n", type=int, default=1000, help="samples per setting (default: 1000)")
    ei.add_argument("--seed", type=int, default=0)
    ei.add_argument("--solver", default="midpoint", help="fixed-grid ODE solver (midpoint)")
    ei.add_argument("--steps", type=int, default=10, help="solver steps (default: 10)")
    _add_common(ei)

    fe = sub.add_parser(
        "fit-energy", help="fit a planar flow to an unnormalized 2-D energy by reverse KL"
    )
    _add_fit_energy_flags(fe)

    for name, text in (
        ("reflow", "retrain on (noise, sample) pairs of a trained flow: straighter paths"),
        ("distill", "train a 1- or 2-step Euler student on a trained flow's pairs"),
    ):
        _add_reflow_flags(sub.add_parser(name, help=text), distill=name == "distill")

    d = sub.add_parser("demo", help="train on a built-in 2-D set, evaluate and plot")
    d.add_argument("--data", default="moons", help="built-in 2-D dataset (default: moons)")
    d.add_argument("--steps", type=int, default=4000)
    d.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")
    return p


def _add_fit_energy_flags(p: argparse.ArgumentParser) -> None:
    from flowmatch.data.energies import ENERGIES
    from flowmatch.flows import PLANAR_ACTIVATIONS

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
        help="start with a learnable diagonal Gaussian (default: True)",
    )
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps (default: 5000)")
    p.add_argument("--batch-size", type=int, default=256, help="draws of q per step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 2e-3)")
    p.add_argument(
        "--anneal-steps",
        type=int,
        default=None,
        help="steps of the inverse-temperature ramp 0.01 -> 1 (default: steps / 4)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--box",
        type=float,
        nargs=4,
        metavar=("Z1MIN", "Z1MAX", "Z2MIN", "Z2MAX"),
        help="the box of the target and of the report (default: -4 4 -4 4)",
    )
    p.add_argument("--grid", type=int, default=400, help="quadrature grid per axis (400)")
    p.add_argument("--n", type=int, default=20_000, help="draws of q for the report (20000)")


def _add_time_grid_flag(p: argparse.ArgumentParser) -> None:
    from flowmatch.solvers import TIME_GRIDS

    p.add_argument(
        "--time-grid",
        default="uniform",
        choices=list(TIME_GRIDS),
        help="step times of fixed-grid solvers: "
        + "; ".join(f"{g.name}: {g.description}" for g in TIME_GRIDS.values()),
    )


def _add_reflow_flags(p: argparse.ArgumentParser, *, distill: bool) -> None:
    p.add_argument("run", type=Path, metavar="RUN_DIR", help="the trained teacher")
    p.add_argument("--out", type=Path, required=True, help="new run folder")
    p.add_argument("--pairs", type=int, default=10_000, help="(x0, x1) pairs to make (10000)")
    p.add_argument("--pair-seed", type=int, default=0, help="seed of the pairs' source draws")
    p.add_argument(
        "--pairs-file", type=Path, help="where to write the pairs (default: RUN_DIR/pairs/...)"
    )
    p.add_argument("--solver", default="dopri5", help="ODE solver making the pairs (dopri5)")
    p.add_argument("--steps", type=int, default=100, help="its steps, if fixed-grid (100)")
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
        help="start from the teacher's weights (default: True)",
    )
    if distill:
        p.add_argument(
            "--distill-steps", type=int, default=1, help="Euler steps of the student (1)"
        )
    p.add_argument("--raw-weights", action="store_true", help="use the teacher's raw weights")


def _add_condition_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--class",
        dest="label",
        metavar="K",
        help="class label to sample (a class-conditional run), or 'all' for every class in turn",
    )
    p.add_argument(
        "--cond",
        type=Path,
        metavar="FILE",
        help="condition vectors, (n, d) or (d,), in a .npy/.npz/.csv file",
    )
    p.add_argument(
        "--guidance",
        type=float,
        metavar="W",
        help="classifier-free guidance scale: v_u + W (v_c - v_u) (1: plain conditional)",
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--raw-weights", action="store_true", help="use raw weights instead of EMA")


def _add_solver_flags(p: argparse.ArgumentParser) -> None:
    from flowmatch.solvers import SOLVERS

    p.add_argument("--solver", default="midpoint", choices=list(SOLVERS), help="ODE solver")
    p.add_argument("--steps", type=int, default=50, help="steps of a fixed-grid solver")
    p.add_argument("--atol", type=float, default=1e-5, help="adaptive solvers' abs. tolerance")
    p.add_argument("--rtol", type=float, default=1e-5, help="adaptive solvers' rel. tolerance")
    _add_common(p)


def _version() -> str:
    from flowmatch import __version__

    return f"flowmatch {__version__}"


def _solver_kwargs(args: argparse.Namespace) -> dict:
    return {"solver": args.solver, "steps": args.steps, "atol": args.atol, "rtol": args.rtol}


def _grid_kwargs(args: argparse.Namespace, flow, *, backward: bool = False) -> dict:
    """Solver options with the --time-grid built for this flow (see evaluation.solver_options)."""
    from flowmatch.evaluation import solver_options
    from flowmatch.solvers import SOLVERS

    name = getattr(args, "time_grid", "uniform")
    if name != "uniform" and SOLVERS.get(args.solver) and SOLVERS[args.solver].adaptive:
        raise FlowmatchError(
            f"--time-grid sets the steps of fixed-grid solvers, but {args.solver} is adaptive; "
            "drop --time-grid or pick euler, midpoint, heun or rk4"
        )
    if args.steps < 1:
        raise FlowmatchError(f"--steps must be >= 1, got {args.steps}")
    return solver_options(
        flow, args.solver, args.steps, name, atol=args.atol, rtol=args.rtol, backward=backward
    )


def _load(args: argparse.Namespace):
    from flowmatch.runs import load_run

    return load_run(args.run, device=args.device, ema=not args.raw_weights)


def _check_output(path: Path, suffix: str) -> None:
    if path.suffix != suffix:
        raise FlowmatchError(f"--out must end in {suffix}, got {path}")
    if path.exists():
        raise FlowmatchError(f"{path} already exists; remove it or choose another --out")
    if not path.parent.is_dir():
        raise FlowmatchError(f"folder {path.parent} does not exist; create it first")


def _save_npy(path: Path, x: torch.Tensor) -> None:
    from flowmatch.training.checkpoint import atomic_write

    buf = io.BytesIO()
    np.save(buf, x.detach().cpu().numpy())
    atomic_write(path, buf.getvalue())


# -- subcommands --------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from flowmatch.models import ModelConfig
    from flowmatch.training import TrainConfig, make_reporter, resume, train

    given = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k not in ("command", "out", "resume", "stop_after", "func")
    }
    if args.stop_after is not None and args.stop_after < 1:
        raise FlowmatchError(f"--stop-after must be >= 1, got {args.stop_after}")
    if args.resume is not None:
        extra = set(given) - {"device"}
        if args.out is not None or extra:
            flags = sorted("--" + k.replace("_", "-") for k in extra) + (
                ["--out"] if args.out else []
            )
            raise FlowmatchError(
                f"--resume continues a run with its saved config; drop {', '.join(flags)}"
            )
        result = resume(
            args.resume,
            reporter=make_reporter(),
            stop_after=args.stop_after,
            device=given.get("device"),
        )
    else:
        if args.out is None:
            raise FlowmatchError("give --out RUN_DIR for a new run, or --resume RUN_DIR")
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        model_cfg = ModelConfig(**{k: v for k, v in given.items() if k in model_fields})
        cfg = TrainConfig(
            model=model_cfg, **{k: v for k, v in given.items() if k not in model_fields}
        )
        result = train(cfg, args.out, reporter=make_reporter(), stop_after=args.stop_after)
    state = "done" if result.complete else "stopped (resume with --resume)"
    loss = "n/a" if result.loss is None else f"{result.loss:.4f}"
    print(
        f"{state}: step {result.step}/{result.total_steps}, loss {loss}, "
        f"{result.seconds:.1f}s; run folder: {result.run_dir}"
    )


def cmd_sample(args: argparse.Namespace) -> None:
    from flowmatch.conditional_cli import check_grid_output, sample_condition, write_grid

    if args.out is None and args.grid is None:
        raise FlowmatchError("give --out FILE.npy for the samples, --grid FILE.png, or both")
    if args.out is not None:
        _check_output(args.out, ".npy")
    if args.grid is not None:
        check_grid_output(args.grid)
    n = args.n if args.n is not None else (1000 if args.out is not None else 64)
    if n < 1:
        raise FlowmatchError(f"--n must be >= 1, got {n}")
    flow, info = _load(args)
    n, extra, nrow = sample_condition(args, flow, info, n)
    sol = flow.sample_trajectory(
        n, seed=args.seed, return_trajectory=False, **extra, **_grid_kwargs(args, flow)
    )
    how = f"{args.solver}, NFE {sol.nfe}"
    if getattr(flow, "discrete", False):
        how = f"{sol.nfe} layers"
    if args.out is not None:
        _save_npy(args.out, sol.x)
        print(f"wrote {n} samples to {args.out} ({how})")
    if args.grid is not None:
        write_grid(sol.x, info, args.grid, nrow)
        print(f"wrote a grid of {n} samples to {args.grid} ({how})")


def cmd_invert(args: argparse.Namespace) -> None:
    from flowmatch.data import load_array

    _check_output(args.out, ".npy")
    flow, info = _load(args)
    x = load_array(args.data)
    check_points(x, str(args.data), dim=info.dim)
    z = flow.invert(x, **_grid_kwargs(args, flow, backward=True))
    _save_npy(args.out, z)
    print(f"wrote the noise of {x.shape[0]} points to {args.out}")


def _reference(args: argparse.Namespace, info) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out data, and an independent draw of real data of the same size for the floor."""
    from flowmatch.data import get_dataset, load_array

    g = torch.Generator().manual_seed(args.seed)
    if args.data is not None:
        ref = check_points(load_array(args.data), str(args.data), dim=info.dim)
        dataset = get_dataset(info.config.data)
        floor = dataset.iid_sample(ref.shape[0], g)
        return ref, floor
    dataset = get_dataset(info.config.data)
    if args.n < 2:
        raise FlowmatchError(f"--n must be >= 2, got {args.n}")
    ref = dataset.held_out(args.n, g)
    floor = dataset.iid_sample(ref.shape[0], torch.Generator().manual_seed(args.seed + 1))
    return ref, floor


def cmd_eval(args: argparse.Namespace) -> None:
    from flowmatch.evaluation import evaluate_flow
    from flowmatch.metrics import mmd, wasserstein2

    _check_curve_flags(args)
    flow, info = _load(args)
    ref, other = _reference(args, info)
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
        from flowmatch.training.checkpoint import atomic_write

        out = {
            "rows": [dataclasses.asdict(r) for r in rows],
            "floor": {"w2": floor_w2, "mmd": floor_mmd},
            "n": ref.shape[0],
            "time_grid": args.time_grid,
            **extra,
        }
        atomic_write(args.json, json.dumps(out, indent=2).encode())


def _check_curve_flags(args: argparse.Namespace) -> None:
    from flowmatch.solvers import SOLVERS

    spec = SOLVERS.get(args.curve_solver)
    if spec is None or spec.adaptive:
        fixed = [n for n, v in SOLVERS.items() if not v.adaptive]
        raise FlowmatchError(
            f"--curve-solver must be a fixed-grid solver ({', '.join(fixed)}), "
            f"got {args.curve_solver}"
        )
    if not args.tolerance >= 0:
        raise FlowmatchError(f"--tolerance must be >= 0 (e.g. 0.05 for 5%), got {args.tolerance}")


def _w2_row(row) -> dict:
    """A curve row as JSON, without the MMD that curves skip."""
    return {k: v for k, v in dataclasses.asdict(row).items() if k != "mmd"}


def _eval_curve(args: argparse.Namespace, flow, ref: torch.Tensor, rows: list) -> dict:
    """Print the W2-versus-NFE curve, the recommended step count and the straightness."""
    from flowmatch.evaluation import flow_path_statistics, recommend_steps, w2_nfe_curve

    if getattr(flow, "discrete", False) or not hasattr(flow, "field"):
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


def cmd_logprob(args: argparse.Namespace) -> None:
    from flowmatch.likelihood_cli import run_logprob

    run_logprob(args)


def cmd_plot(args: argparse.Namespace) -> None:
    from flowmatch.viz.run_figures import write_run_figures

    flow, info = _load(args)
    out = args.out or (info.run_dir / "plots")
    out.mkdir(parents=True, exist_ok=True)
    paths = write_run_figures(flow, info, out, n=args.n, seed=args.seed, **_solver_kwargs(args))
    for path in paths:
        print(path)


def cmd_fit_energy(args: argparse.Namespace) -> None:
    from flowmatch.training.checkpoint import check_new_run_dir
    from flowmatch.training.energy import fit_energy, save_energy_fit
    from flowmatch.viz.energy import write_energy_fit_figure

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
    figure = write_energy_fit_figure(flow, fit.energy, args.out / "density.png", seed=args.seed)
    print("\n".join(fit.report.lines()))
    print(f"fit in {fit.seconds:.1f}s; run folder: {args.out}; figure: {figure}")


def cmd_reflow(args: argparse.Namespace, method: str = "fm") -> None:
    from flowmatch.training import make_reporter, reflow

    overrides = {k: getattr(args, k) for k in ("lr", "batch_size", "seed")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.pairs < 1:
        raise FlowmatchError(f"--pairs must be >= 1, got {args.pairs}")
    if args.train_steps is not None and args.train_steps < 1:
        raise FlowmatchError(f"--train-steps must be >= 1, got {args.train_steps}")
    print(f"making {args.pairs} pairs with {args.solver} from {args.run}")
    r = reflow(
        args.run,
        args.out,
        n_pairs=args.pairs,
        seed=args.pair_seed,
        solver=args.solver,
        steps=args.steps,
        method=method,
        distill_steps=getattr(args, "distill_steps", 1),
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


def cmd_distill(args: argparse.Namespace) -> None:
    cmd_reflow(args, method="distill")


def cmd_eval_images(args: argparse.Namespace) -> None:
    from flowmatch.conditional_cli import evaluate_image_run

    if args.n < 2:
        raise FlowmatchError(f"--n must be >= 2, got {args.n}")
    flow, info = _load(args)
    for line in evaluate_image_run(flow, info, args):
        print(line)


def cmd_demo(args: argparse.Namespace) -> None:
    from flowmatch.data import TOY_DATASETS

    if args.data not in TOY_DATASETS:
        raise FlowmatchError(
            f"demo takes a built-in 2-D set; choose one of: {', '.join(TOY_DATASETS)}"
        )
    out = args.out or Path("runs") / f"demo-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"training flow matching on '{args.data}' for {args.steps} steps into {out}")
    _run(["train", "--data", args.data, "--steps", str(args.steps), "--out", str(out)])
    print("\nevaluating against 2000 fresh draws of the data:")
    _run(["eval", str(out), "--json", str(out / "eval.json")])
    print("\nfigures:")
    _run(["plot", str(out)])
    print(f"\ndone: run folder {out}")


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "invert": cmd_invert,
    "eval": cmd_eval,
    "logprob": cmd_logprob,
    "plot": cmd_plot,
    "fit-energy": cmd_fit_energy,
    "reflow": cmd_reflow,
    "distill": cmd_distill,
    "demo": cmd_demo,
    "eval-images": cmd_eval_images,
}


def _run(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowmatch`` command; returns the exit status."""
    from flowmatch.training import TrainingInterrupted

    try:
        _run(sys.argv[1:] if argv is None else argv)
    except TrainingInterrupted as exc:
        print(f"flowmatch: {exc}", file=sys.stderr)
        return 130
    except FlowmatchError as exc:
        print(f"flowmatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowmatch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
