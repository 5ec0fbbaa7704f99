"""The logit transform: a bijection from a bounded range (low, high) onto R, with its log-det.

Dequantized discrete data such as pixel values fill a box [low, high)^D, and much of their mass
sits at its walls (black background, saturated strokes). A density that drops to zero at a
wall is a sharp edge that a smooth flow from N(0, I) can only approach, and the likelihood
pays for every bit of mass the flow spills over the wall. The logit transform

    y = logit(p),    p = alpha + (1 - 2 alpha) (x - low) / (high - low),

sends the walls to +-logit(alpha), far out in the tails, so the flow models a density on R
without hard edges; log-densities convert back exactly with

    log |dy/dx| = log(1 - 2 alpha) - log(high - low) - log p - log(1 - p)   (per feature).

References:
    Dinh et al., "Density Estimation using Real NVP" (2017), Section 4.1; Papamakarios et al.,
    "Masked Autoregressive Flow for Density Estimation" (2017), Section 4.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError

__all__ = ["LogitTransform"]


@dataclass(frozen=True)
class LogitTransform:
    """y = logit(alpha + (1 - 2 alpha) (x - low) / (high - low)), elementwise.

    Attributes:
        low: the lower end of every feature's range.
        high: the upper end, > low.
        alpha: how far inside (0, 1) the range is squeezed before the logit, in (0, 0.5); the
            walls land at -+log((1 - alpha) / alpha).

    Example:
        >>> t = LogitTransform(low=0.0, high=17.0, alpha=0.01)
        >>> x = torch.tensor([[0.0, 8.5, 16.99]])
        >>> torch.allclose(t.inverse(t.forward(x)), x, atol=1e-4), t.forward(x)[0, 1].item()
        (True, 0.0)
    """

    low: float
    high: float
    alpha: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise FlowmatchError(
                f"a logit transform needs a finite range low < high, got ({self.low}, {self.high})"
            )
        if not 0 < self.alpha < 0.5:
            raise FlowmatchError(f"the logit alpha must be in (0, 0.5), got {self.alpha}")

    def _p(self, x: Tensor) -> Tensor:
        return self.alpha + (1 - 2 * self.alpha) * (x - self.low) / (self.high - self.low)

    def forward(self, x: Tensor) -> Tensor:
        """y = logit(p(x)) for x inside :attr:`domain` (which holds [low, high]), any shape."""
        p = self._p(x)
        return torch.log(p) - torch.log1p(-p)

    def inverse(self, y: Tensor) -> Tensor:
        """x = low + (high - low) (sigmoid(y) - alpha) / (1 - 2 alpha), any shape."""
        return self.low + (self.high - self.low) * (torch.sigmoid(y) - self.alpha) / (
            1 - 2 * self.alpha
        )

    def log_abs_det(self, x: Tensor) -> Tensor:
        """sum over features of log |dy/dx| at x (N, ...); returns (N,)."""
        p = self._p(x.reshape(x.shape[0], -1))  # (N, D)
        const = math.log(1 - 2 * self.alpha) - math.log(self.high - self.low)
        return (const - torch.log(p) - torch.log1p(-p)).sum(dim=1)

    @property
    def domain(self) -> tuple[float, float]:
        """The open interval that maps onto R: [low, high] widened by alpha (high - low) /
        (1 - 2 alpha) on each side (samples may land in that margin)."""
        m = self.alpha * (self.high - self.low) / (1 - 2 * self.alpha)
        return self.low - m, self.high + m

    def check_inside(self, x: Tensor) -> None:
        """Reject points outside :attr:`domain`, where the transformed density is zero."""
        lo, hi = self.domain
        if not bool(((x > lo) & (x < hi)).all()):
            raise FlowmatchError(
                f"points lie outside ({lo:.4g}, {hi:.4g}), the range of this run's logit "
                "transform, where its density is zero; pass data in the training range"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> LogitTransform:
        try:
            return cls(float(d["low"]), float(d["high"]), float(d["alpha"]))
        except (KeyError, TypeError, ValueError):
            raise FlowmatchError(
                f"the run's logit transform record is damaged ({d!r}); retrain the run"
            ) from None
