"""Embeddings of the time t in [0, 1] (and later of conditions) for velocity networks."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["FourierFeatures", "SinusoidalTimeEmbedding"]


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

    def __init__(self, dim: int = 32, max_freq: float = 30.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding size must be an even number >= 2, got {dim}")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        angles = t[:, None] * self.freqs  # (B, dim / 2)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


class FourierFeatures(nn.Module):
    """Map x (B, D) to [x, sin(x B), cos(x B)] (B, D + 2 m), with B (D, m) ~ N(0, scale^2).

    A plain MLP of low-dimensional coordinates learns fine spatial detail slowly (spectral
    bias), so a field that must form sharp edges, such as a flow onto a checkerboard near
    t = 1, stays blurred for a long time. Random Fourier features of the input put frequencies
    of order ``scale`` within the first layer's reach. B is drawn from a fixed seed and saved
    with the weights, so a run rebuilds the same map.

    Args:
        dim: the data dimension D.
        features: m, the number of random frequencies (the output has D + 2 m entries).
        scale: the standard deviation of the angular frequencies, in the units of x (the
            standardized data for a trained model).

    References:
        Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional
        Domains (Tancik et al., 2020).
    """

    SEED = 20200618

    def __init__(self, dim: int, features: int, scale: float) -> None:
        super().__init__()
        if features < 1 or not scale > 0:
            raise ValueError(f"Fourier features need m >= 1 and scale > 0, got {features}, {scale}")
        g = torch.Generator().manual_seed(self.SEED)
        self.register_buffer("freqs", scale * torch.randn(dim, features, generator=g))
        self.out_dim = dim + 2 * features

    def forward(self, x: Tensor) -> Tensor:
        angles = x @ self.freqs  # (B, m)
        return torch.cat([x, angles.sin(), angles.cos()], dim=1)
