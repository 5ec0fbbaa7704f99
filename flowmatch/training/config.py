"""The typed configuration of a training run; every command-line flag maps to one field."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from flowmatch.data import Dataset, get_dataset
from flowmatch.data.conditions import ConditionSpec
from flowmatch.errors import FlowmatchError, check_int, check_seed, lookup
from flowmatch.models import ModelConfig, parse_channel_mult

__all__ = ["TrainConfig", "check_device_name", "max_threads"]

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


FIELDS_ADDED_LATER: dict[str, Any] = {
    "ot_batch": 0,
    "time_sampling": "uniform",
    "text_word_dropout": 0.0,
}
"""Fields whose default is not (or may not stay) what runs saved without them did: such a run
gets this value, so it resumes as it trained (OT couplings solved the whole batch at once;
times were uniform before the measured defaults of docs/benchmarks.md, "Defaults"; no words of
a text condition were dropped)."""

MODEL_FIELDS_ADDED_LATER: dict[str, Any] = {"time_max_freq": 1000.0}
"""The same for the model config: the time embedding's frequency cap was 1000 before it was a
field, and the default moved to a measured value later (docs/benchmarks.md, "Defaults"), so a
saved model without the field rebuilds the network it trained."""


@dataclass
class TrainConfig:
    """Everything needed to reproduce a run from its folder alone.

    Defaults were picked by measurement on 2-D toy data on a 2-core CPU (see the benchmarks).
    """

    data: str = field(
        default="moons",
        metadata={
            "help": "built-in dataset name, a .npy/.npz/.csv file of shape (N, D), or images: "
            "a folder of PNG/JPEG (one sub-folder per class) or an .npz of uint8 'images'"
        },
    )
    preset: str = field(
        default="",
        metadata={
            "help": "named recipe whose values fill every field not given explicitly, saved "
            "with its name (docs/presets.md; empty: none)"
        },
    )
    method: str = field(default="fm", metadata={"help": "training method"})
    path: str = field(
        default="linear", metadata={"help": "probability path from noise (t=0) to data (t=1)"}
    )
    sigma_min: float = field(
        default=0.0,
        metadata={
            "help": "noise std left at t=1 by --path linear: x_t = t x1 + (1 - (1 - s) t) x0 "
            "(Lipman et al.; e.g. 1e-4; 0: the plain linear path)"
        },
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = field(default=5000, metadata={"help": "optimizer steps in total"})
    batch_size: int = field(default=256, metadata={"help": "samples per step"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate"})
    optimizer: str = field(default="adamw", metadata={"help": "optimizer"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay"})
    warmup_steps: int = field(default=100, metadata={"help": "linear learning-rate warm-up steps"})
    lr_decay: str = field(default="cosine", metadata={"help": "learning-rate decay after warm-up"})
    min_lr_ratio: float = field(
        default=0.05, metadata={"help": "final learning rate as a fraction of --lr"}
    )
    grad_clip: float = field(
        default=1.0, metadata={"help": "clip the gradient norm to this (0 disables)"}
    )
    ema_decay: float = field(
        default=0.999, metadata={"help": "decay of the weight EMA used for sampling"}
    )
    time_sampling: str = field(
        default="logit-normal", metadata={"help": "distribution of training times t"}
    )
    logit_normal_mean: float = field(
        default=0.0, metadata={"help": "mean of the logit-normal time distribution"}
    )
    logit_normal_std: float = field(
        default=1.0, metadata={"help": "std of the logit-normal time distribution"}
    )
    time_uniform_share: float = field(
        default=0.0,
        metadata={
            "help": "share of training times drawn uniformly instead (mixes a skewed "
            "--time-sampling with U[0, 1])"
        },
    )
    seed: int = field(
        default=0, metadata={"help": "random seed (data draws, noise, times and initialization)"}
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda or cuda:N"})
    threads: int = field(
        default=0,
        metadata={"help": "CPU threads (0: one for small models, torch's default otherwise)"},
    )
    precision: str = field(
        default="fp32",
        metadata={
            "help": "autocast dtype of the training forward pass: bf16 works on CPUs (fast only "
            "with native bf16 such as AMX) and recent GPUs, fp16 on CUDA only (with a gradient "
            "scaler); sampling and likelihood stay fp32"
        },
    )
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile the velocity network for training (needs a C++ compiler on "
            "the CPU, Triton on CUDA; not with --method cnf or planar)"
        },
    )
    checkpoint_every: int = field(
        default=1000, metadata={"help": "write a checkpoint every this many steps"}
    )
    log_every: int = field(default=100, metadata={"help": "log the loss every this many steps"})
    holdout_fraction: float = field(
        default=0.1, metadata={"help": "fraction of a data file held out for evaluation"}
    )
    # -- continuous normalizing flows, maximum likelihood (--method cnf) ---------------------
    cnf_solver: str = field(
        default="rk4", metadata={"help": "ODE solver of the likelihood in training (--method cnf)"}
    )
    cnf_steps: int = field(default=8, metadata={"help": "steps of a fixed-grid --cnf-solver"})
    cnf_jitter: bool = field(
        default=True,
        metadata={"help": "move the inner grid nodes at random each step, so all t are trained"},
    )
    cnf_atol: float = field(
        default=1e-5, metadata={"help": "absolute tolerance of an adaptive --cnf-solver"}
    )
    cnf_rtol: float = field(
        default=1e-5, metadata={"help": "relative tolerance of an adaptive --cnf-solver"}
    )
    cnf_divergence: str = field(
        default="auto",
        metadata={"help": "divergence in training: exact, hutchinson, or auto (exact for D <= 16)"},
    )
    cnf_probes: int = field(
        default=1, metadata={"help": "Hutchinson probes per sample (--method cnf)"}
    )
    cnf_probe: str = field(
        default="rademacher", metadata={"help": "Hutchinson probe distribution (--method cnf)"}
    )
    cnf_kinetic: float = field(
        default=0.0,
        metadata={
            "help": "weight of the kinetic-energy penalty int ||v||^2 dt (RNODE; 0 disables)"
        },
    )
    # -- discrete flows (--method planar) ------------------------------------------------------
    layers: int = field(default=16, metadata={"help": "planar layers K (--method planar)"})
    planar_activation: str = field(
        default="tanh", metadata={"help": "gate h of the planar layers (--method planar)"}
    )
    planar_affine: bool = field(
        default=True,
        metadata={"help": "start the planar stack with a learnable elementwise affine layer"},
    )
    # -- couplings and sources -------------------------------------------------------------------
    coupling: str = field(
        default="independent",
        metadata={
            "help": "how source and data batches are paired (minibatch OT straightens paths)"
        },
    )
    ot_batch: int = field(
        default=64,
        metadata={
            "help": "rows per exact OT problem of --coupling ot/class-ot (0: the whole batch)"
        },
    )
    source: str = field(
        default="gaussian",
        metadata={"help": "distribution at t=0: gaussian, a built-in dataset or a data file"},
    )
    pairs: str = field(
        default="",
        metadata={"help": "fixed (x0, x1) pairs file from flowmatch reflow; replaces the coupling"},
    )
    init_from: str = field(
        default="", metadata={"help": "start from this run's EMA weights (reflow, distillation)"}
    )
    distill_steps: int = field(
        default=1, metadata={"help": "Euler steps of the student (--method distill)"}
    )
    standardize: bool = field(
        default=True,
        metadata={
            "help": "scale data and a data source to zero mean, unit variance for the network"
        },
    )
    logit: float = field(
        default=0.0,
        metadata={
            "help": "map bounded (quantized) data onto R by a logit transform squeezed by "
            "this alpha before standardizing, e.g. 0.001 for digits (0: off)"
        },
    )
    # -- conditioning ------------------------------------------------------------------------------
    conditional: bool = field(
        default=True,
        metadata={
            "help": "train on the data's conditions (class labels, observations) if it has any"
        },
    )
    cond_drop: float = field(
        default=0.1,
        metadata={
            "help": "probability of dropping a sample's condition in training (for --guidance)"
        },
    )
    text_word_dropout: float = field(
        default=0.0,
        metadata={
            "help": "probability that each known word of a text condition (prompt, "
            "instruction) is replaced by <unk> in training, so the text encoder learns to "
            "read past unknown words; never at sampling (0: off)"
        },
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def dataset(self) -> Dataset:
        """The run's data set: a built-in, or a file split with ``holdout_fraction``."""
        return get_dataset(self.data, self.holdout_fraction)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by :meth:`to_dict`, rejecting unknown fields and any value
        :meth:`validate` refuses (checked as a saved run: ``validate(here=False)``)."""
        if not isinstance(d, dict):
            raise FlowmatchError("run config is not a JSON object; the run folder is corrupt")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise FlowmatchError(
                f"run config has unknown fields {sorted(unknown)}; "
                "it was written by another program or a newer flowmatch"
            )
        d = dict(d)
        for name, value in FIELDS_ADDED_LATER.items():
            d.setdefault(name, value)
        if not isinstance(d.get("model", {}), dict):
            raise FlowmatchError(f"run config's model is not a JSON object: {d['model']!r}")
        mknown = {f.name for f in dataclasses.fields(ModelConfig)}
        if set(d.get("model", {})) - mknown:
            raise FlowmatchError(
                f"run config has unknown model fields {sorted(set(d['model']) - mknown)}"
            )
        d["model"] = ModelConfig(**(MODEL_FIELDS_ADDED_LATER | d.get("model", {})))
        cfg = cls(**d)
        cfg.validate(here=False)
        return cfg

    def _validate_cnf(self) -> None:
        from flowmatch.likelihood import DIVERGENCES, PROBES
        from flowmatch.solvers import SOLVERS

        lookup(SOLVERS, self.cnf_solver, "--cnf-solver")
        lookup(DIVERGENCES, self.cnf_divergence, "--cnf-divergence")
        lookup(PROBES, self.cnf_probe, "--cnf-probe")
        check_int(self.cnf_steps, "--cnf-steps")
        check_int(self.cnf_probes, "--cnf-probes")
        for name, value in (("--cnf-atol", self.cnf_atol), ("--cnf-rtol", self.cnf_rtol)):
            if not (math.isfinite(value) and value > 0):
                raise FlowmatchError(f"{name} must be a positive number (e.g. 1e-5), got {value}")
        if not (math.isfinite(self.cnf_kinetic) and self.cnf_kinetic >= 0):
            raise FlowmatchError(
                f"--cnf-kinetic must be >= 0 (0 disables the kinetic-energy penalty), "
                f"got {self.cnf_kinetic}"
            )

    def _validate_discrete_flow(self) -> None:
        from flowmatch.flows import PLANAR_ACTIVATIONS

        check_int(self.layers, "--layers")
        lookup(PLANAR_ACTIVATIONS, self.planar_activation, "--planar-activation")

    def _validate_couplings(self) -> None:
        from flowmatch.couplings import COUPLINGS

        lookup(COUPLINGS, self.coupling, "--coupling")
        if not isinstance(self.source, str) or not self.source:
            raise FlowmatchError("--source must be 'gaussian', a data set name or a file path")
        if self.pairs and self.coupling != "independent":
            raise FlowmatchError(
                f"--pairs fixes which x0 goes with which x1, so --coupling {self.coupling} "
                "cannot apply; drop --coupling"
            )
        if self.method == "distill" and not self.pairs:
            raise FlowmatchError(
                "--method distill regresses on teacher pairs; give --pairs FILE "
                "(or use: flowmatch distill TEACHER_RUN --out NEW_RUN)"
            )
        check_int(self.ot_batch, "--ot-batch", 0)  # 0 solves the whole batch at once
        check_int(self.distill_steps, "--distill-steps")

    def _validate_conditioning(self) -> None:
        if not 0.0 <= self.cond_drop < 1.0:
            raise FlowmatchError(
                f"--cond-drop must be in [0, 1) (the share of samples trained without their "
                f"condition), got {self.cond_drop}"
            )
        if not 0.0 <= self.text_word_dropout < 1.0:
            raise FlowmatchError(
                f"--text-word-dropout must be in [0, 1) (the share of known words replaced by "
                f"<unk> in training), got {self.text_word_dropout}"
            )
        m = self.model
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
        if m.cond_embed_dim < 1 or m.channels < 1 or m.levels < 0:
            raise FlowmatchError(
                f"--cond-embed-dim and --channels must be >= 1 and --levels >= 0, got "
                f"{m.cond_embed_dim}, {m.channels} and {m.levels}"
            )

    def _validate_ranges(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            check_int(getattr(self, name), flag(name))
        check_int(self.warmup_steps, "--warmup-steps", 0)
        check_seed(self.seed)
        if not self.lr > 0:
            raise FlowmatchError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise FlowmatchError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise FlowmatchError(f"--min-lr-ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0:
            raise FlowmatchError(f"--grad-clip must be >= 0 (0 disables), got {self.grad_clip}")
        if not 0 <= self.ema_decay < 1:
            raise FlowmatchError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if not self.logit_normal_std > 0:
            raise FlowmatchError(f"--logit-normal-std must be > 0, got {self.logit_normal_std}")
        if not 0 <= self.time_uniform_share <= 1:
            raise FlowmatchError(
                f"--time-uniform-share must be in [0, 1], got {self.time_uniform_share}"
            )
        if not 0 < self.holdout_fraction < 1:
            raise FlowmatchError(
                f"--holdout-fraction must be in (0, 1), got {self.holdout_fraction}"
            )
        if not (self.logit == 0 or 0 < self.logit < 0.5):
            raise FlowmatchError(f"--logit must be 0 (off) or in (0, 0.5), got {self.logit}")
        if self.logit and self.method == "planar":
            raise FlowmatchError("--logit works with the velocity-field methods, not planar")
        if not self.data:
            raise FlowmatchError("--data must name a built-in data set or a file")

    def _validate_machine(self, here: bool) -> None:
        check_device_name(self.device)
        most = max_threads() if here else SAVED_MAX_THREADS
        if not 0 <= self.threads <= most:
            why = f"; this machine has {os.cpu_count()} CPU cores" if here else ""
            raise FlowmatchError(
                f"--threads must be in [0, {most}] (0 = automatic{why}), got {self.threads}"
            )

    def _validate_speed(self) -> None:
        from flowmatch.training.precision import PRECISIONS, check_compile_method

        lookup(PRECISIONS, self.precision, "--precision")
        if self.compile:
            check_compile_method(self.method)

    def _validate_registries(self) -> None:
        from flowmatch.models import ACTIVATIONS, MODELS
        from flowmatch.paths import PATHS
        from flowmatch.training.methods import METHODS
        from flowmatch.training.optim import OPTIMIZERS
        from flowmatch.training.schedules import LR_DECAYS, TIME_SAMPLERS

        lookup(METHODS, self.method, "--method")
        lookup(PATHS, self.path, "--path")
        if not 0 <= self.sigma_min < 1:
            raise FlowmatchError(
                f"--sigma-min must be in [0, 1) (0: the plain path), got {self.sigma_min}"
            )
        if self.sigma_min and self.path != "linear":
            raise FlowmatchError(
                f"--sigma-min applies to --path linear only, got --path {self.path}; "
                "drop --sigma-min or use --path linear"
            )
        lookup(OPTIMIZERS, self.optimizer, "--optimizer")
        lookup(LR_DECAYS, self.lr_decay, "--lr-decay")
        lookup(TIME_SAMPLERS, self.time_sampling, "--time-sampling")
        lookup(MODELS, self.model.name, "--model")
        lookup(ACTIVATIONS, self.model.activation, "--activation")

    def validate(self, *, here: bool = True) -> None:
        """Reject impossible values with one line each; names match the command-line flags.

        Every field must have its declared type (floats finite), every name must be in its
        registry and every number in its range.

        Args:
            here: also check what depends on this machine (``--threads`` at most four per
                CPU core). A saved run (:meth:`from_dict`) is checked with ``here=False``,
                so a run folder from a bigger machine still loads.
        """
        if not isinstance(self.model, ModelConfig):
            raise FlowmatchError(f"the model config must be a ModelConfig, got {self.model!r}")
        check_types(self)
        check_types(self.model)
        self._validate_machine(here)
        if here and self.preset:  # a saved run keeps its values even if the preset is gone
            from flowmatch.training.presets import PRESETS

            lookup(PRESETS, self.preset, "--preset")
        self._validate_registries()
        self._validate_conditioning()
        self._validate_ranges()
        self._validate_discrete_flow()
        self._validate_cnf()
        self._validate_couplings()
        self._validate_speed()
        m = self.model
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
