"""The independent coupling pi(x0, x1) = p0(x0) p1(x1) of the flow-matching tutorial."""

from __future__ import annotations

import torch
from torch import Tensor

from flowmatch.couplings.base import Coupling

__all__ = ["IndependentCoupling"]


class IndependentCoupling(Coupling):
    """Keep the draws as they come: row j of x0 is paired with row j of x1.

    References:
        Lipman et al., "Flow Matching for Generative Modeling" (2023).

    Example:
        >>> x0, x1 = torch.zeros(3, 2), torch.ones(3, 2)
        >>> IndependentCoupling().pair(x0, x1)[0] is x0
        True
    """

    name = "independent"
    one_to_one = True

    def _pair(
        self, x0: Tensor, x1: Tensor, cond: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        return x0, x1
