"""The independent coupling pi(x0, x1) = p0(x0) p1(x1) of the flow-matching tutorial."""

from __future__ import annotations

import torch
from torch import Tensor

from flowmatch.couplings.base import check_batch
from flowmatch.errors import FlowmatchError

__all__ = ["IndependentCoupling"]


class IndependentCoupling:
    """Keep the draws as they come: row j of x0 is paired with row j of x1.

    References:
        Lipman et al., "Flow Matching for Generative Modeling" (2023).

    Example:
        >>> x0, x1 = torch.zeros(3, 2), torch.ones(3, 2)
        >>> IndependentCoupling().pair(x0, x1)[0] is x0
        True
    """

    name = "independent"

    def pair(
        self,
        x0: Tensor,
        x1: Tensor,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        check_batch(x0, x1, cond)
        if x0.shape[0] != x1.shape[0]:
            raise FlowmatchError(
                f"the independent coupling pairs rows one to one; x0 has {x0.shape[0]} rows "
                f"and x1 has {x1.shape[0]}"
            )
        return x0, x1
