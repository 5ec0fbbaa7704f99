"""Embeddings of the time t in [0, 1] (and later of conditions) for velocity networks."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SinusoidalTimeEmbedding"]


class SinusoidalTimeEmbedding(nn.Module):
    """Map t (B,) to [sin(w_k t), cos(w_k t)]_k (B, dim) with w_k geometric in [1, max_freq].

    Low frequencies let the network follow slow changes of the field over [0, 1]; high ones
    let it change quickly near t = 0 or 1, where flow-matching fields are sharpest.

    Args:
        dim: output size (even).
        max_freq: the largest angular frequency.

    References:
        Attention Is All You Need (Vaswani et al., 2017); Fourier Features Let Networks Learn
        High Frequency Functions in Low Dimensional Domains (Tancik et al., 2020).
    """

    def __init__(self, dim: int = 32, max_freq: float = 1000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding size must be an even number >= 2, got {dim}")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        angles = t[:, None] * self.freqs  # (B, dim / 2)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)
