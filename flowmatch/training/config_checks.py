"""Which training configurations are refused, each with one line that says why and what to do.

:meth:`~flowmatch.training.config.TrainConfig.validate` runs these checks; the names in the
messages are the command-line flags.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING, Any

from flowmatch.data.conditions import ConditionSpec
from flowmatch.errors import FlowmatchError, check_int, check_seed, lookup
from flowmatch.models import ModelConfig, parse_channel_mult

if TYPE_CHECKING:
    from flowmatch.training.config import TrainConfig

__all__ = ["check_device_name", "flag", "max_threads", "validate_config"]

MAX_INPUT_SCALE = 1e6
"""Above this, random Fourier features of standardized data are noise at any float precision."""
SAVED_MAX_THREADS = 4096
"""The most threads a saved run may name (its machine may have had more cores than this one)."""
DEVICE_TYPES = ("cpu", "cuda")
KINDS = {
    "int": "an integer",
    "float": "a finite number",
    "bool": "true or false",
    "str": "a string",
}


def max_threads() -> int:
    """The most ``--threads`` a new run may ask for here: four per CPU core."""
    return 4 * (os.cpu_count() or 1)


def flag(name: str) -> str:
    """The command-line flag of a config field: ``batch_size`` -> ``--batch-size``."""
    return "--model" if name == "name" else "--" + name.replace("_", "-")


def check_types(config: Any) -> None:
    """Refuse a field of the wrong type (a bool for an int, NaN or Inf for a float, None...)."""
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), f.type
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
        elif kind == "str":
            ok = isinstance(value, str)
        else:
            continue
        if not ok:
            raise FlowmatchError(f"{flag(f.name)} must be {KINDS[kind]}, got {value!r}")


def check_device_name(name: object) -> str:
    """Check the spelling of ``--device`` (cpu, cuda or cuda:N) and return it; whether the
    device exists here is :func:`~flowmatch.errors.check_device`'s question."""
    import torch

    try:
        kind = torch.device(name).type if isinstance(name, str) else None
    except RuntimeError:
        kind = None
    if kind not in DEVICE_TYPES:
        raise FlowmatchError(f"unknown --device {name!r}; use cpu, cuda or cuda:N")
    return name


def validate_config(cfg: TrainConfig, *, here: bool = True) -> None:
    """Reject impossible values with one line each; names match the command-line flags.

    Every field must have its declared type (floats finite), every name must be in its
    registry and every number in its range.

    Args:
        cfg: the configuration.
        here: also check what depends on this machine (``--threads`` at most four per
            CPU core). A saved run (``TrainConfig.from_dict``) is checked with
            ``here=False``, so a run folder from a bigger machine still loads.
    """
    if not isinstance(cfg.model, ModelConfig):
        raise FlowmatchError(f"the model config must be a ModelConfig, got {cfg.model!r}")
    check_types(cfg)
    check_types(cfg.model)
    _machine(cfg, here)
    if here and cfg.preset:  # a saved run keeps its values even if the preset is gone
        from flowmatch.training.presets import PRESETS

        lookup(PRESETS, cfg.preset, "--preset")
    _registries(cfg)
    _conditioning(cfg)
    _ranges(cfg)
    _discrete_flow(cfg)
    _cnf(cfg)
    _couplings(cfg)
    _speed(cfg)
    m = cfg.model
    if m.width < 1 or m.depth < 1:
        raise FlowmatchError(f"--width and --depth must be >= 1, got {m.width} and {m.depth}")
    if not m.time_max_freq >= 1:
        raise FlowmatchError(f"--time-max-freq must be >= 1, got {m.time_max_freq}")
    if m.input_features < 0 or not 0 < m.input_scale <= MAX_INPUT_SCALE:
        raise FlowmatchError(
            f"--input-features must be >= 0 and --input-scale in (0, {MAX_INPUT_SCALE:g}], "
            f"got {m.input_features} and {m.input_scale}"
        )
    if (m.input_features or m.film) and m.name != "mlp":
        raise FlowmatchError("--input-features and --film work with --model mlp only")
    if (m.channel_mult.strip() or m.attention) and m.name != "unet":
        raise FlowmatchError("--channel-mult and --attention work with --model unet only")
    try:
        parse_channel_mult(m.channel_mult, m.levels)
    except ValueError as exc:
        raise FlowmatchError(str(exc)) from None
    if m.time_embed_dim < 2 or m.time_embed_dim % 2:
        raise FlowmatchError(
            f"--time-embed-dim must be an even number >= 2, got {m.time_embed_dim}"
        )


def _cnf(cfg: TrainConfig) -> None:
    from flowmatch.likelihood import DIVERGENCES, PROBES
    from flowmatch.solvers import SOLVERS

    lookup(SOLVERS, cfg.cnf_solver, "--cnf-solver")
    lookup(DIVERGENCES, cfg.cnf_divergence, "--cnf-divergence")
    lookup(PROBES, cfg.cnf_probe, "--cnf-probe")
    check_int(cfg.cnf_steps, "--cnf-steps")
    check_int(cfg.cnf_probes, "--cnf-probes")
    for name, value in (("--cnf-atol", cfg.cnf_atol), ("--cnf-rtol", cfg.cnf_rtol)):
        if not (math.isfinite(value) and value > 0):
            raise FlowmatchError(f"{name} must be a positive number (e.g. 1e-5), got {value}")
    if not (math.isfinite(cfg.cnf_kinetic) and cfg.cnf_kinetic >= 0):
        raise FlowmatchError(
            f"--cnf-kinetic must be >= 0 (0 disables the kinetic-energy penalty), "
            f"got {cfg.cnf_kinetic}"
        )


def _discrete_flow(cfg: TrainConfig) -> None:
    from flowmatch.flows import PLANAR_ACTIVATIONS

    check_int(cfg.layers, "--layers")
    lookup(PLANAR_ACTIVATIONS, cfg.planar_activation, "--planar-activation")


def _couplings(cfg: TrainConfig) -> None:
    from flowmatch.couplings import COUPLINGS

    lookup(COUPLINGS, cfg.coupling, "--coupling")
    if not isinstance(cfg.source, str) or not cfg.source:
        raise FlowmatchError("--source must be 'gaussian', a data set name or a file path")
    if cfg.pairs and cfg.coupling != "independent":
        raise FlowmatchError(
            f"--pairs fixes which x0 goes with which x1, so --coupling {cfg.coupling} "
            "cannot apply; drop --coupling"
        )
    if cfg.method == "distill" and not cfg.pairs:
        raise FlowmatchError(
            "--method distill regresses on teacher pairs; give --pairs FILE "
            "(or use: flowmatch distill TEACHER_RUN --out NEW_RUN)"
        )
    check_int(cfg.ot_batch, "--ot-batch", 0)  # 0 solves the whole batch at once
    check_int(cfg.distill_steps, "--distill-steps")


def _conditioning(cfg: TrainConfig) -> None:
    if not 0.0 <= cfg.cond_drop < 1.0:
        raise FlowmatchError(
            f"--cond-drop must be in [0, 1) (the share of samples trained without their "
            f"condition), got {cfg.cond_drop}"
        )
    if not 0.0 <= cfg.text_word_dropout < 1.0:
        raise FlowmatchError(
            f"--text-word-dropout must be in [0, 1) (the share of known words replaced by "
            f"<unk> in training), got {cfg.text_word_dropout}"
        )
    m = cfg.model
    check_int(m.num_classes, "--num-classes", 0)  # 0: from the data
    check_int(m.cond_dim, "--cond-dim", 0)
    if m.num_classes and m.cond_dim:
        raise FlowmatchError("give --num-classes or --cond-dim, not both")
    if not isinstance(m.condition, dict):
        raise FlowmatchError(f"the model's condition record is not a dict: {m.condition!r}")
    if m.condition:
        if m.num_classes or m.cond_dim:
            raise FlowmatchError(
                "a model with a condition spec takes no --num-classes or --cond-dim"
            )
        ConditionSpec.from_dict(m.condition)  # refuses a damaged record in one line
    _text_encoder(cfg)
    if m.cond_embed_dim < 1 or m.channels < 1 or m.levels < 0:
        raise FlowmatchError(
            f"--cond-embed-dim and --channels must be >= 1 and --levels >= 0, got "
            f"{m.cond_embed_dim}, {m.channels} and {m.levels}"
        )


def _text_encoder(cfg: TrainConfig) -> None:
    m = cfg.model
    for name in ("text_width", "text_layers", "text_heads", "text_ff_mult"):
        check_int(getattr(m, name), flag(name))
    if m.text_width % m.text_heads:
        fits = [h for h in range(1, min(m.text_width, 16) + 1) if m.text_width % h == 0]
        raise FlowmatchError(
            f"--text-heads {m.text_heads} does not divide --text-width {m.text_width} "
            f"(each head attends in width / heads dimensions); use one of "
            f"{', '.join(map(str, fits))} heads, or another width"
        )


def _ranges(cfg: TrainConfig) -> None:
    for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
        check_int(getattr(cfg, name), flag(name))
    check_int(cfg.warmup_steps, "--warmup-steps", 0)
    check_seed(cfg.seed)
    if not cfg.lr > 0:
        raise FlowmatchError(f"--lr must be > 0, got {cfg.lr}")
    if cfg.weight_decay < 0:
        raise FlowmatchError(f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    if not 0 <= cfg.min_lr_ratio <= 1:
        raise FlowmatchError(f"--min-lr-ratio must be in [0, 1], got {cfg.min_lr_ratio}")
    if cfg.grad_clip < 0:
        raise FlowmatchError(f"--grad-clip must be >= 0 (0 disables), got {cfg.grad_clip}")
    if not 0 <= cfg.ema_decay < 1:
        raise FlowmatchError(f"--ema-decay must be in [0, 1), got {cfg.ema_decay}")
    if not cfg.logit_normal_std > 0:
        raise FlowmatchError(f"--logit-normal-std must be > 0, got {cfg.logit_normal_std}")
    if not 0 <= cfg.time_uniform_share <= 1:
        raise FlowmatchError(
            f"--time-uniform-share must be in [0, 1], got {cfg.time_uniform_share}"
        )
    if not 0 < cfg.holdout_fraction < 1:
        raise FlowmatchError(f"--holdout-fraction must be in (0, 1), got {cfg.holdout_fraction}")
    if not (cfg.logit == 0 or 0 < cfg.logit < 0.5):
        raise FlowmatchError(f"--logit must be 0 (off) or in (0, 0.5), got {cfg.logit}")
    if cfg.logit and cfg.method == "planar":
        raise FlowmatchError("--logit works with the velocity-field methods, not planar")
    if not cfg.data:
        raise FlowmatchError("--data must name a built-in data set or a file")


def _machine(cfg: TrainConfig, here: bool) -> None:
    check_device_name(cfg.device)
    most = max_threads() if here else SAVED_MAX_THREADS
    if not 0 <= cfg.threads <= most:
        why = f"; this machine has {os.cpu_count()} CPU cores" if here else ""
        raise FlowmatchError(
            f"--threads must be in [0, {most}] (0 = automatic{why}), got {cfg.threads}"
        )


def _speed(cfg: TrainConfig) -> None:
    from flowmatch.training.precision import PRECISIONS, check_compile_method

    lookup(PRECISIONS, cfg.precision, "--precision")
    if cfg.compile:
        check_compile_method(cfg.method)


def _registries(cfg: TrainConfig) -> None:
    from flowmatch.models import ACTIVATIONS, MODELS
    from flowmatch.paths import PATHS
    from flowmatch.training.methods import METHODS
    from flowmatch.training.optim import OPTIMIZERS
    from flowmatch.training.schedules import LR_DECAYS, TIME_SAMPLERS

    lookup(METHODS, cfg.method, "--method")
    lookup(PATHS, cfg.path, "--path")
    if not 0 <= cfg.sigma_min < 1:
        raise FlowmatchError(
            f"--sigma-min must be in [0, 1) (0: the plain path), got {cfg.sigma_min}"
        )
    if cfg.sigma_min and cfg.path != "linear":
        raise FlowmatchError(
            f"--sigma-min applies to --path linear only, got --path {cfg.path}; "
            "drop --sigma-min or use --path linear"
        )
    lookup(OPTIMIZERS, cfg.optimizer, "--optimizer")
    lookup(LR_DECAYS, cfg.lr_decay, "--lr-decay")
    lookup(TIME_SAMPLERS, cfg.time_sampling, "--time-sampling")
    lookup(MODELS, cfg.model.name, "--model")
    lookup(ACTIVATIONS, cfg.model.activation, "--activation")
