"""The elementwise affine layer x = exp(log_scale) ⊙ z + shift."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError

__all__ = ["ElementwiseAffine"]


class ElementwiseAffine(nn.Module):
    """x = exp(ℓ) ⊙ z + c with learnable ℓ, c in R^D; log|det ∂x/∂z| = Σ_i ℓ_i.

    Placed first in a stack it turns the base N(0, I) into a learnable diagonal Gaussian
    N(c, diag exp(2ℓ)), the initial density q_0 of Rezende & Mohamed's construction.
    It starts as the identity (ℓ = c = 0).

    Args:
        dim: D, the number of features.

    Example:
        >>> layer = ElementwiseAffine(3)
        >>> x, ladj = layer(torch.ones(4, 3))
        >>> x.tolist()[0], ladj.tolist()
        ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise FlowmatchError(f"an affine layer needs dim >= 1 features, got {dim!r}")
        self.dim = dim
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """x = exp(ℓ) ⊙ z + c and log|det ∂x/∂z|: (B, D) -> ((B, D), (B,))."""
        x = z * self.log_scale.exp() + self.shift
        return x, self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = exp(-ℓ) ⊙ (x - c) and log|det ∂z/∂x| = -Σ ℓ: (B, D) -> ((B, D), (B,))."""
        z = (x - self.shift) * (-self.log_scale).exp()
        return z, -self.log_scale.sum().expand(x.shape[0])

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
