"""Exponential moving average of model weights, used for sampling by default."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Keep theta_ema <- d theta_ema + (1 - d) theta after every optimizer step.

    The decay ramps up as min(decay, (1 + k) / (10 + k)) so that short runs are not dominated
    by the random initialization.

    Args:
        model: the model being trained.
        decay: the long-run decay d in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.updates = 0
        self._src = [p for p in model.parameters()]
        self._dst = [p for p in self.model.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._dst, self._src, 1.0 - d)
