"""Couplings pi(x0, x1) of source and data batches: independent and minibatch optimal transport.

Every coupling has ``pair(x0, x1, cond=None, *, generator=None) -> (x0', x1)``: the data keep
their order and row j of x0' is the source point paired with x1[j]. The registry's names are
the ``--coupling`` choices of ``flowmatch train``.

Example:
    >>> import torch
    >>> from flowmatch.couplings import COUPLINGS
    >>> list(COUPLINGS)
    ['independent', 'ot', 'sinkhorn', 'class-ot']
    >>> x0, x1 = torch.randn(8, 2), torch.randn(8, 2)
    >>> COUPLINGS["ot"].pair(x0, x1)[0].shape
    torch.Size([8, 2])
"""

from __future__ import annotations

from flowmatch.couplings.base import (
    Coupling,
    check_batch,
    draw_partners,
    pair_in_blocks,
    squared_distances,
)
from flowmatch.couplings.independent import IndependentCoupling
from flowmatch.couplings.ot import ClassConditionalOT, ExactOT, SinkhornOT
from flowmatch.errors import lookup

__all__ = [
    "COUPLINGS",
    "ClassConditionalOT",
    "Coupling",
    "ExactOT",
    "IndependentCoupling",
    "SinkhornOT",
    "batch_cost",
    "check_batch",
    "draw_partners",
    "get_coupling",
    "pair_in_blocks",
    "squared_distances",
]

COUPLINGS: dict[str, Coupling] = {
    "independent": IndependentCoupling(),
    "ot": ExactOT(),
    "sinkhorn": SinkhornOT(),
    "class-ot": ClassConditionalOT(),
}
"""Coupling name -> coupling; the names are the command-line choices."""


def get_coupling(name: str) -> Coupling:
    """Look up a coupling by its command-line name."""
    return lookup(COUPLINGS, name, "coupling")


def batch_cost(x0, x1) -> float:
    """The mean squared distance (1/B) sum_j ||x0_j - x1_j||^2 of row-wise pairs, a float."""
    d = (x0.reshape(x0.shape[0], -1).double() - x1.reshape(x1.shape[0], -1).double()).square()
    return float(d.sum(dim=1).mean())
