"""Learning-rate schedules and time samplers: small registries used by the training loop."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from flowmatch.errors import lookup

__all__ = ["LR_DECAYS", "TIME_SAMPLERS", "lr_factor", "sample_time"]

# decay(progress in [0, 1]) -> factor in [0, 1], applied after warm-up.
LR_DECAYS: dict[str, Callable[[float], float]] = {
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "linear": lambda p: 1.0 - p,
    "constant": lambda p: 1.0,
}


def lr_factor(step: int, total: int, warmup: int, decay: str, min_ratio: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then decay."""
    schedule = lookup(LR_DECAYS, decay, "--lr-decay")
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1.0 - min_ratio) * schedule(min(progress, 1.0))


def _uniform(n: int, g: torch.Generator, mean: float, std: float) -> Tensor:
    return torch.rand(n, generator=g)


def _logit_normal(n: int, g: torch.Generator, mean: float, std: float) -> Tensor:
    # t = sigmoid(m + s * eps) puts more weight on the middle of the path, where the
    # flow-matching target is most ambiguous (Esser et al., 2024).
    return torch.sigmoid(mean + std * torch.randn(n, generator=g))


TIME_SAMPLERS: dict[str, Callable[[int, torch.Generator, float, float], Tensor]] = {
    "uniform": _uniform,
    "logit-normal": _logit_normal,
}


def sample_time(
    name: str,
    n: int,
    generator: torch.Generator,
    mean: float = 0.0,
    std: float = 1.0,
    uniform_share: float = 0.0,
) -> Tensor:
    """Draw n training times in [0, 1] (CPU tensor) from the named distribution.

    With ``uniform_share`` s > 0, the times come from the mixture (1 - s) named + s U[0, 1]:
    a skewed sampler then still visits every t often enough to train the field there. With
    s = 0 the random stream is that of the named sampler alone.
    """
    t = lookup(TIME_SAMPLERS, name, "--time-sampling")(n, generator, mean, std)
    if uniform_share > 0:
        pick = torch.rand(n, generator=generator) < uniform_share
        t = torch.where(pick, torch.rand(n, generator=generator), t)
    return t
