"""The coupling interface: how a batch of source points x0 is paired with a batch of data x1."""

from __future__ import annotations

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError

__all__ = [
    "Coupling",
    "check_batch",
    "draw_partners",
    "pair_in_blocks",
    "squared_distances",
]


def check_batch(
    x0: Tensor, x1: Tensor, cond: Tensor | None = None, *, one_to_one: str | None = None
) -> None:
    """Reject batches whose features or lengths cannot be paired, with one line.

    Args:
        x0: (B0, ...) source batch.
        x1: (B, ...) data batch with as many features per row as x0.
        cond: optional per-row conditions of x1, (B, ...).
        one_to_one: the name of a coupling that pairs row j of x0 with row j of x1 and so
            needs B0 == B; None when the batch sizes may differ.
    """
    for name, x in (("x0", x0), ("x1", x1)):
        if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] < 1:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise FlowmatchError(f"{name} must be a batch of shape (B, ...), got {got}")
    if x0[0].numel() != x1[0].numel():
        raise FlowmatchError(
            f"x0 has {x0[0].numel()} features per row but x1 has {x1[0].numel()}; "
            "a coupling pairs points of the same dimension"
        )
    if cond is not None and (not isinstance(cond, Tensor) or cond.shape[0] != x1.shape[0]):
        got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
        raise FlowmatchError(f"cond must have one row per row of x1 ({x1.shape[0]}), got {got}")
    if one_to_one is not None and x0.shape[0] != x1.shape[0]:
        raise FlowmatchError(
            f"the {one_to_one} coupling pairs rows one to one; x0 has {x0.shape[0]} rows "
            f"and x1 has {x1.shape[0]}"
        )


class Coupling:
    """A joint distribution pi(x0, x1) with marginals p0 and p1, sampled one batch at a time.

    ``pair(x0, x1, cond)`` takes independent draws x0 (B0, ...) ~ p0 and x1 (B, ...) ~ p1
    (with optional per-row conditions ``cond`` (B, ...) of x1) and returns ``(x0', x1)``: the
    data x1 and its conditions keep their order, and row j of x0' (B, ...) is the source point
    paired with x1[j]. All randomness comes from ``generator``.

    ``pair`` validates the batch once (:func:`check_batch`) and calls ``_pair``, which
    subclasses implement on checked inputs. Subclasses set ``name``, ``one_to_one`` (True when
    x0 and x1 must have as many rows) and ``blockwise``.
    """

    name: str
    one_to_one: bool = False
    blockwise: bool = False
    """Whether training solves it on blocks of ``--ot-batch`` rows (exact solvers, ~O(B^3))."""

    def pair(
        self,
        x0: Tensor,
        x1: Tensor,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Pair the rows of x0 with those of x1; returns (x0', x1) with x0' of x1's length."""
        check_batch(x0, x1, cond, one_to_one=self.name if self.one_to_one else None)
        return self._pair(x0, x1, cond, generator)

    def _pair(
        self, x0: Tensor, x1: Tensor, cond: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _pair_blocks(
        self,
        x0: Tensor,
        x1: Tensor,
        cond: Tensor | None,
        block: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """x0' (B, ...) for checked equal batches coupled block by block (see pair_in_blocks).

        This default calls ``_pair`` on every block; a coupling that can solve all blocks in
        one batched call overrides it.
        """
        parts = [
            self._pair(
                x0[s : s + block],
                x1[s : s + block],
                None if cond is None else cond[s : s + block],
                generator,
            )[0]
            for s in range(0, x1.shape[0], block)
        ]
        return torch.cat(parts)


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """The cost matrix C_ij = ||x0_i - x1_j||^2 in float64, (B0, B1), on x0's device.

    Computed from differences, not from ||a||^2 + ||b||^2 - 2 a.b, so it has no cancellation.
    """
    a = x0.detach().reshape(x0.shape[0], -1).double()  # (B0, D)
    b = x1.detach().reshape(x1.shape[0], -1).double().to(a.device)  # (B1, D)
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()


def draw_partners(plan: Tensor, generator: torch.Generator | None) -> Tensor:
    """For every column j of a transport plan P (B0, B1), one row index i ~ P[:, j] / sum_i P_ij.

    Drawing the source partner of each data point from the plan's conditional keeps x1 in its
    order and samples (i, j) from P exactly when the column sums are uniform. When P is a
    scaled permutation matrix (every column has one non-zero entry), the partner is read off
    with an argmax and no randomness is used.

    Args:
        plan: (B0, B1) non-negative plan.
        generator: source of the draws (CPU), used only when a column has several entries.

    Returns:
        (B1,) long tensor of row indices on the CPU.
    """
    p = plan.detach().to("cpu", torch.float64).clamp_min(0.0)  # (B0, B1)
    scale = p.max().clamp_min(torch.finfo(torch.float64).tiny)
    support = (p > 1e-9 * scale).sum(dim=0)  # (B1,)
    if bool((support == 1).all()):
        return p.argmax(dim=0)
    weights = p.T  # (B1, B0): row j is the conditional of x0 given x1_j, up to scale
    empty = weights.sum(dim=1) <= 0
    weights[empty] = 1.0  # a column the solver left empty: fall back to a uniform partner
    return torch.multinomial(weights, 1, replacement=True, generator=generator).squeeze(1)


def pair_in_blocks(
    coupling: Coupling,
    x0: Tensor,
    x1: Tensor,
    cond: Tensor | None = None,
    *,
    block: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Couple a batch as independent sub-batches of ``block`` rows (minibatch OT of size k).

    The rows of x0 and x1 are independent draws, so splitting the batch into consecutive
    blocks and coupling each block on its own is the same coupling as drawing B / k minibatches
    of size k: the marginals are unchanged, only the OT problems are smaller. An exact OT solve
    costs roughly O(k^3), so blocks of k rows cost O(B k^2) per batch instead of O(B^3); the
    pairs are a little less straight for small k (Pooladian et al., 2023).

    Args:
        coupling: any coupling.
        x0: (B, ...) source batch.
        x1: (B, ...) data batch.
        cond: optional per-row conditions of x1, (B, ...).
        block: rows per coupling problem; 0, or >= B, couples the whole batch at once.
        generator: passed to the coupling.

    Returns:
        (x0', x1) as :meth:`Coupling.pair` returns them.

    References:
        Pooladian et al., "Multisample Flow Matching: Straightening Flows with Minibatch
        Couplings" (2023).
    """
    b = x1.shape[0]
    if block <= 0 or block >= b or x0.shape[0] != b:
        return coupling.pair(x0, x1, cond, generator=generator)
    check_batch(x0, x1, cond)
    return coupling._pair_blocks(x0, x1, cond, block, generator), x1
