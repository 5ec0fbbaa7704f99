"""The typed configuration of a training run; every command-line flag maps to one field."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig

__all__ = ["TrainConfig"]


FIELDS_ADDED_LATER: dict[str, Any] = {"ot_batch": 0}
"""Fields whose default is not what runs saved before the field existed did: such a run gets
this value, so it resumes as it trained (OT couplings solved the whole batch at once)."""


@dataclass
class TrainConfig:
    """Everything needed to reproduce a run from its folder alone.

    Defaults were picked by measurement on 2-D toy data on a 2-core CPU (see the benchmarks).
    """

    data: str = "moons"
    method: str = "fm"
    path: str = "linear"
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 5000
    batch_size: int = 256
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_decay: str = "cosine"
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    time_sampling: str = "uniform"
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    time_uniform_share: float = 0.0
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    checkpoint_every: int = 1000
    log_every: int = 100
    holdout_fraction: float = 0.1
    # -- continuous normalizing flows, maximum likelihood (--method cnf) ---------------------
    cnf_solver: str = "rk4"
    cnf_steps: int = 8
    cnf_jitter: bool = True
    cnf_atol: float = 1e-5
    cnf_rtol: float = 1e-5
    cnf_divergence: str = "auto"
    cnf_probes: int = 1
    cnf_probe: str = "rademacher"
    cnf_kinetic: float = 0.0
    # -- discrete flows (--method planar) ------------------------------------------------------
    layers: int = 16
    planar_activation: str = "tanh"
    planar_affine: bool = True
    # -- couplings and sources -------------------------------------------------------------------
    coupling: str = "independent"
    ot_batch: int = 64
    source: str = "gaussian"
    pairs: str = ""
    init_from: str = ""
    distill_steps: int = 1
    standardize: bool = True
    logit: float = 0.0
    # -- conditioning ------------------------------------------------------------------------------
    conditional: bool = True
    cond_drop: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by :meth:`to_dict`, rejecting unknown or missing fields."""
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
        if isinstance(d.get("model"), dict):
            mknown = {f.name for f in dataclasses.fields(ModelConfig)}
            if set(d["model"]) - mknown:
                raise FlowmatchError(
                    f"run config has unknown model fields {sorted(set(d['model']) - mknown)}"
                )
            d["model"] = ModelConfig(**d["model"])
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def _validate_cnf(self) -> None:
        from flowmatch.likelihood import DIVERGENCES, PROBES
        from flowmatch.solvers import SOLVERS

        for flag, value, registry in (
            ("--cnf-solver", self.cnf_solver, SOLVERS),
            ("--cnf-divergence", self.cnf_divergence, DIVERGENCES),
            ("--cnf-probe", self.cnf_probe, PROBES),
        ):
            if value not in registry:
                raise FlowmatchError(
                    f"unknown {flag} '{value}'; choose one of: {', '.join(registry)}"
                )
        for flag, value in (("--cnf-steps", self.cnf_steps), ("--cnf-probes", self.cnf_probes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FlowmatchError(f"{flag} must be an integer >= 1, got {value!r}")
        for flag, value in (("--cnf-atol", self.cnf_atol), ("--cnf-rtol", self.cnf_rtol)):
            if not (math.isfinite(value) and value > 0):
                raise FlowmatchError(f"{flag} must be a positive number (e.g. 1e-5), got {value}")
        if not (math.isfinite(self.cnf_kinetic) and self.cnf_kinetic >= 0):
            raise FlowmatchError(
                f"--cnf-kinetic must be >= 0 (0 disables the kinetic-energy penalty), "
                f"got {self.cnf_kinetic}"
            )

    def _validate_discrete_flow(self) -> None:
        from flowmatch.flows import PLANAR_ACTIVATIONS

        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 1:
            raise FlowmatchError(f"--layers must be an integer >= 1, got {self.layers!r}")
        if self.planar_activation not in PLANAR_ACTIVATIONS:
            raise FlowmatchError(
                f"unknown --planar-activation '{self.planar_activation}'; choose one of: "
                f"{', '.join(PLANAR_ACTIVATIONS)}"
            )

    def _validate_couplings(self) -> None:
        from flowmatch.couplings import COUPLINGS

        if self.coupling not in COUPLINGS:
            raise FlowmatchError(
                f"unknown --coupling '{self.coupling}'; choose one of: {', '.join(COUPLINGS)}"
            )
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
        if isinstance(self.ot_batch, bool) or not isinstance(self.ot_batch, int):
            raise FlowmatchError(f"--ot-batch must be an integer >= 0, got {self.ot_batch!r}")
        if self.ot_batch < 0:
            raise FlowmatchError(
                f"--ot-batch must be >= 0 (0 solves the whole batch at once), got {self.ot_batch}"
            )
        steps = self.distill_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise FlowmatchError(f"--distill-steps must be an integer >= 1, got {steps!r}")

    def _validate_conditioning(self) -> None:
        if not 0.0 <= self.cond_drop < 1.0:
            raise FlowmatchError(
                f"--cond-drop must be in [0, 1) (the share of samples trained without their "
                f"condition), got {self.cond_drop}"
            )
        m = self.model
        for name in ("num_classes", "cond_dim"):
            v = getattr(m, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                flag = "--" + name.replace("_", "-")
                raise FlowmatchError(
                    f"{flag} must be an integer >= 0 (0: from the data), got {v!r}"
                )
        if m.num_classes and m.cond_dim:
            raise FlowmatchError("give --num-classes or --cond-dim, not both")
        if m.cond_embed_dim < 1 or m.channels < 1 or m.levels < 0:
            raise FlowmatchError(
                f"--cond-embed-dim and --channels must be >= 1 and --levels >= 0, got "
                f"{m.cond_embed_dim}, {m.channels} and {m.levels}"
            )

    def validate(self) -> None:
        """Reject impossible values with one line each; names match the command-line flags."""
        self._validate_conditioning()
        positive_ints = ("steps", "batch_size", "checkpoint_every", "log_every")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                flag = name.replace("_", "-")
                raise FlowmatchError(f"--{flag} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise FlowmatchError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise FlowmatchError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise FlowmatchError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
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
        if self.threads < 0:
            raise FlowmatchError(f"--threads must be >= 0 (0 = automatic), got {self.threads}")
        if not 0 <= self.holdout_fraction < 1:
            raise FlowmatchError(
                f"--holdout-fraction must be in [0, 1), got {self.holdout_fraction}"
            )
        if not (self.logit == 0 or 0 < self.logit < 0.5):
            raise FlowmatchError(f"--logit must be 0 (off) or in (0, 0.5), got {self.logit}")
        if self.logit and self.method == "planar":
            raise FlowmatchError("--logit works with the velocity-field methods, not planar")
        self._validate_discrete_flow()
        self._validate_cnf()
        self._validate_couplings()
        m = self.model
        if m.width < 1 or m.depth < 1:
            raise FlowmatchError(f"--width and --depth must be >= 1, got {m.width} and {m.depth}")
        if not (math.isfinite(m.time_max_freq) and m.time_max_freq >= 1):
            raise FlowmatchError(f"--time-max-freq must be >= 1, got {m.time_max_freq}")
        if m.input_features < 0 or not (math.isfinite(m.input_scale) and m.input_scale > 0):
            raise FlowmatchError(
                f"--input-features must be >= 0 and --input-scale > 0, got {m.input_features} "
                f"and {m.input_scale}"
            )
        if m.input_features and m.name != "mlp":
            raise FlowmatchError("--input-features works with --model mlp only")
        if m.time_embed_dim < 2 or m.time_embed_dim % 2:
            raise FlowmatchError(
                f"--time-embed-dim must be an even number >= 2, got {m.time_embed_dim}"
            )
