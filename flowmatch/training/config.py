"""The typed configuration of a training run; every command-line flag maps to one field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig

__all__ = ["TrainConfig"]


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
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    checkpoint_every: int = 1000
    log_every: int = 100
    holdout_fraction: float = 0.1
    # -- continuous normalizing flows, maximum likelihood (--method cnf) ---------------------
    # -- discrete flows (--method planar) ------------------------------------------------------
    # -- couplings and sources -------------------------------------------------------------------
    # -- conditioning ------------------------------------------------------------------------------

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

    def validate(self) -> None:
        """Reject impossible values with one line each; names match the command-line flags."""
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
        if self.threads < 0:
            raise FlowmatchError(f"--threads must be >= 0 (0 = automatic), got {self.threads}")
        if not 0 <= self.holdout_fraction < 1:
            raise FlowmatchError(
                f"--holdout-fraction must be in [0, 1), got {self.holdout_fraction}"
            )
        m = self.model
        if m.width < 1 or m.depth < 1:
            raise FlowmatchError(f"--width and --depth must be >= 1, got {m.width} and {m.depth}")
        if m.time_embed_dim < 2 or m.time_embed_dim % 2:
            raise FlowmatchError(
                f"--time-embed-dim must be an even number >= 2, got {m.time_embed_dim}"
            )
