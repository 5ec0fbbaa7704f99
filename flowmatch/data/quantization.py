"""Discrete-valued data and its uniform dequantization y = x + Delta u, u ~ U[0, 1)^D."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError

__all__ = ["Quantization"]


@dataclass(frozen=True)
class Quantization:
    """Features that take ``levels`` values low, low + Delta, ..., low + (levels - 1) Delta.

    A continuous density fitted to the dequantized values y = x + Delta u, u ~ U[0, 1)^D,
    lives on [low, low + levels Delta)^D, and E_u[-log p(y)] - D log Delta bounds the
    discrete negative log-likelihood -log P(x) from above (see
    :mod:`flowmatch.likelihood.nll`).

    Attributes:
        levels: the number of values each feature can take.
        bin_width: the spacing Delta between values, in data units.
        low: the smallest value.

    Example:
        >>> q = Quantization(levels=17)
        >>> y = q.dequantize(torch.tensor([[0.0, 16.0]]), torch.Generator().manual_seed(0))
        >>> bool(((y >= 0) & (y < 17)).all()), q.on_grid(torch.tensor([[3.0, 4.0]]))
        (True, True)
    """

    levels: int
    bin_width: float = 1.0
    low: float = 0.0

    def __post_init__(self) -> None:
        if self.levels < 2 or not self.bin_width > 0:
            raise FlowmatchError(
                f"a quantization needs levels >= 2 and bin_width > 0, got {self.levels}, "
                f"{self.bin_width}"
            )

    @property
    def high(self) -> float:
        """The upper end of the dequantized range, low + levels Delta (exclusive)."""
        return self.low + self.levels * self.bin_width

    def dequantize(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x + Delta u with u ~ U[0, 1) drawn (on the CPU) from ``generator``; same shape."""
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
        return x + self.bin_width * u.to(x.device)

    def on_grid(self, x: Tensor) -> bool:
        """Whether every value of ``x`` is one of the levels, up to float32 rounding.

        The tolerance is 1e-4 of a bin: float32 stores k / 255 with an error of up to
        ~2e-5 bins, while a dequantized value lands that near a level with chance 2e-4.
        """
        k = (x.double() - self.low) / self.bin_width
        inside = (k >= -1e-4) & (k <= self.levels - 1 + 1e-4)
        return bool((inside & ((k - k.round()).abs() < 1e-4)).all())
