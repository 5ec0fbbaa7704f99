"""The argument parser of the ``flowmatch`` command: one subparser per subcommand.

``flowmatch train`` gets one flag per :class:`~flowmatch.training.TrainConfig` field, with the
registries' names as choices, so ``--help`` lists exactly what exists.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from flowmatch.cli_common import add_device_flags, add_solver_flags, version_string
from flowmatch.errors import FlowmatchError

__all__ = ["TRAIN_HELP", "build_parser"]

DESCRIPTION = "Train, sample, evaluate and plot flow-based generative models."

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
    "time_uniform_share": "share of training times drawn uniformly instead (mixes a skewed "
    "--time-sampling with U[0, 1])",
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
    "input_features": "random Fourier features of x fed to the mlp (0: none; for sharp "
    "low-dimensional densities)",
    "input_scale": "std of the Fourier features' angular frequencies, in standardized units",
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
    "logit": "map bounded (quantized) data onto R by a logit transform squeezed by this alpha "
    "before standardizing, e.g. 0.001 for digits (0: off)",
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
    p = _Parser(prog="flowmatch", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=version_string())
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
    add_solver_flags(s)
    _add_time_grid_flag(s)
    s.add_argument("--seed", type=int, default=None, help="noise seed (default: random)")

    i = sub.add_parser("invert", help="map data back to noise (data -> noise)")
    i.add_argument("run", type=Path, metavar="RUN_DIR")
    i.add_argument("--data", type=Path, required=True, help=".npy/.npz/.csv file of points")
    i.add_argument("--out", type=Path, required=True, help="output .npy file")
    add_solver_flags(i)
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
    add_device_flags(e)

    from flowmatch.likelihood_cli import add_logprob_flags

    add_logprob_flags(
        sub.add_parser("logprob", help="log-density of data: mean NLL ± stderr and bits/dim")
    )

    pl = sub.add_parser("plot", help="write PNG figures and a GIF of the path")
    pl.add_argument("run", type=Path, metavar="RUN_DIR")
    pl.add_argument("--out", type=Path, help="figure folder (default: RUN_DIR/plots)")
    pl.add_argument("--n", type=int, default=2000, help="samples to draw")
    pl.add_argument("--seed", type=int, default=0)
    add_solver_flags(pl)

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
    add_device_flags(ei)

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
