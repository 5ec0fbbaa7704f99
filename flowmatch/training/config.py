"""The typed configuration of a training run; every command-line flag maps to one field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from flowmatch.data import Dataset, get_dataset
from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig
from flowmatch.training.config_checks import validate_config

__all__ = ["FIELDS_ADDED_LATER", "MODEL_FIELDS_ADDED_LATER", "TrainConfig"]

FIELDS_ADDED_LATER: dict[str, Any] = {
    "ot_batch": 0,
    "time_sampling": "uniform",
    "text_word_dropout": 0.0,
}
"""Fields whose default is not (or may not stay) what runs saved without them did: such a run
gets this value, so it resumes as it trained (OT couplings solved the whole batch at once;
times were uniform before the measured defaults of docs/benchmarks.md, "Defaults"; no words of
a text condition were dropped)."""

MODEL_FIELDS_ADDED_LATER: dict[str, Any] = {
    "time_max_freq": 1000.0,
    "text_width": 64,
    "text_layers": 2,
    "text_heads": 4,
    "text_ff_mult": 2,
}
"""The same for the model config: the time embedding's frequency cap was 1000 before it was a
field, and the default moved to a measured value later (docs/benchmarks.md, "Defaults"), so a
saved model without the field rebuilds the network it trained; the text encoder's sizes were
fixed at these values before they were fields, so they stay pinned if the defaults move."""


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

    def validate(self, *, here: bool = True) -> None:
        """Reject impossible values with one line each; names match the command-line flags.

        Every field must have its declared type (floats finite), every name must be in its
        registry and every number in its range (see
        :func:`~flowmatch.training.config_checks.validate_config`).

        Args:
            here: also check what depends on this machine (``--threads`` at most four per
                CPU core). A saved run (:meth:`from_dict`) is checked with ``here=False``,
                so a run folder from a bigger machine still loads.
        """
        validate_config(self, here=here)
