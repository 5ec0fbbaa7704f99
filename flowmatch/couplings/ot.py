"""Minibatch optimal-transport couplings: exact, entropic (Sinkhorn) and within classes.

Within a batch, the empirical source and data measures (1/B0) sum_i delta_{x0_i} and
(1/B1) sum_j delta_{x1_j} are coupled by the plan P minimizing sum_ij P_ij ||x0_i - x1_j||^2.
Training flow matching on pairs drawn from P (OT-CFM) gives conditional paths that cross less,
so the learned field is straighter and few-step sampling more accurate.

The exact plan of equal batches is an assignment, solved by SciPy's ``linear_sum_assignment``
for small batches and by POT's network simplex (``ot.emd``, C++) from a few hundred rows on
(see :class:`ExactOT` for the measured crossover). POT (Python Optimal Transport) is well
maintained, already a dependency (for the exact W2 metric), and also has a log-domain
Sinkhorn (``ot.sinkhorn`` with ``method="sinkhorn_log"``, stable for small regularization,
O(B^2) per iteration and running on torch tensors, so on the GPU too), which is the one to use
for batches of thousands where the exact solvers' roughly cubic cost would dominate a step.

References:
    Tong et al., "Improving and Generalizing Flow-Based Generative Models with Minibatch
    Optimal Transport" (2024); Pooladian et al., "Multisample Flow Matching: Straightening Flows
    with Minibatch Couplings" (2023); Cuturi, "Sinkhorn Distances: Lightspeed Computation of
    Optimal Transport" (2013).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from flowmatch.couplings.base import Coupling, draw_partners, squared_distances
from flowmatch.errors import FlowmatchError

__all__ = ["ClassConditionalOT", "ExactOT", "SinkhornOT"]

EMD_MAX_ITER = 1_000_000
"""Network-simplex iteration cap; a 1024 x 1024 batch needs well under 10^6."""

ASSIGNMENT_MAX_ROWS = 192
"""Equal batches below this size are paired by SciPy's assignment solver, larger ones by POT's
network simplex (the measured crossover lies between 128 and 256 rows)."""


class _MinibatchOT(Coupling):
    """Shared ``pair``: reorder x0 by the partner of each x1 row that :meth:`partners` draws."""

    def partners(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _pair(
        self, x0: Tensor, x1: Tensor, cond: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """Return (x0[partners], x1); with class labels ``cond`` (B,), pairs within classes.

        A coupling across classes would make x0 depend on c (see :class:`ClassConditionalOT`),
        so given labels the plan is solved inside each class; continuous conditions cannot be
        matched exactly and are refused.
        """
        if cond is not None:
            if torch.is_floating_point(cond):
                raise FlowmatchError(
                    f"the {self.name} coupling pairs within classes and cannot respect "
                    "continuous conditions (vectors); use the independent coupling"
                )
            return ClassConditionalOT(self).pair(x0, x1, cond, generator=generator)
        idx = self.partners(x0, x1, generator)  # (B1,)
        return x0[idx.to(x0.device)], x1


class ExactOT(_MinibatchOT):
    """Exact minibatch OT on the squared Euclidean cost.

    With as many source as data points and uniform weights, the optimal plans include a vertex of
    the Birkhoff polytope, a permutation matrix divided by B, so the problem is the linear
    assignment min_s sum_j ||x0_s(j) - x1_j||^2: x0 is reordered, no point is repeated or dropped,
    and no randomness is used. The assignment is solved by whichever exact solver is faster at the
    batch size (measured on 2-D batches, 1 thread; the times are in docs/benchmarks.md): SciPy's
    shortest augmenting path (``linear_sum_assignment``) below ``ASSIGNMENT_MAX_ROWS`` rows, POT's
    network simplex (``ot.emd``) above. Since ||x0_i||^2 + ||x1_j||^2 adds the same total to every
    assignment, the assignment solver minimizes the cheaper cost -<x0_i, x1_j>. With B0 != B1 the
    plan splits mass and each data point's partner is drawn from its column of the network-simplex
    plan.

    Example:
        >>> x0 = torch.tensor([[0.0], [10.0]])
        >>> x1 = torch.tensor([[11.0], [1.0]])
        >>> ExactOT().pair(x0, x1)[0].squeeze(1).tolist()
        [10.0, 0.0]
    """

    name = "ot"
    blockwise = True

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The optimal plan P (B0, B1) in float64 on the CPU, rows summing to 1/B0."""
        cost = squared_distances(x0, x1).cpu().numpy()  # (B0, B1)
        a = np.full(cost.shape[0], 1.0 / cost.shape[0])
        b = np.full(cost.shape[1], 1.0 / cost.shape[1])
        import ot  # POT on first use: importing flowmatch stays quick

        return torch.from_numpy(ot.emd(a, b, cost, numItermax=EMD_MAX_ITER))

    def partners(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> Tensor:
        b = x1.shape[0]
        if x0.shape[0] != b:
            return draw_partners(self.plan(x0, x1), generator)
        if b >= ASSIGNMENT_MAX_ROWS:  # a permutation matrix / B: read each column's row off
            return torch.from_numpy(self.plan(x0, x1).numpy().argmax(axis=0))
        return torch.from_numpy(_assign(x0, x1, b)[0])

    def _pair_blocks(
        self,
        x0: Tensor,
        x1: Tensor,
        cond: Tensor | None,
        block: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """All full blocks in one batched score computation, then one assignment per block.

        Per block this skips the tensor round trips of a separate ``pair`` call, which cost
        more than the assignment itself for blocks of a few dozen rows.
        """
        b = x1.shape[0]
        full = b - b % block
        if cond is not None or block >= ASSIGNMENT_MAX_ROWS or full == 0:
            return super()._pair_blocks(x0, x1, cond, block, generator)
        idx = _assign(x0[:full], x1[:full], block)  # (B // block, block), block-local
        idx += np.arange(0, full, block)[:, None]
        idx = torch.from_numpy(idx.reshape(-1))  # (full,)
        if full < b:  # the short last block, on its own
            rest = self.partners(x0[full:], x1[full:], generator) + full
            idx = torch.cat([idx, rest])
        return x0[idx.to(x0.device)]


def _assign(x0: Tensor, x1: Tensor, block: int) -> np.ndarray:
    """Exact assignments of consecutive blocks of ``block`` rows of equal batches x0, x1.

    Row j of block k of the result is the block-local index of x1's partner in x0, minimizing
    the block's sum of squared distances, i.e. maximizing sum <x0_s(j), x1_j>.

    Returns:
        (B // block, block) int64 array.
    """
    n = x1.shape[0] // block
    a = x0.detach().reshape(n, block, -1).to("cpu", torch.float64)  # (n, k, D)
    c = x1.detach().reshape(n, block, -1).to("cpu", torch.float64)  # (n, k, D)
    score = torch.bmm(c, a.transpose(1, 2)).numpy()  # (n, k, k): rows data, columns source
    from scipy.optimize import linear_sum_assignment

    # a square problem's row indices come back as 0..k-1 in order, so the columns are the answer
    return np.stack([linear_sum_assignment(s, maximize=True)[1] for s in score])


class SinkhornOT(_MinibatchOT):
    """Entropic minibatch OT: P = argmin <P, C> - eps H(P), by log-domain Sinkhorn iterations.

    The cost is divided by its mean, so ``reg`` is relative to the typical squared distance of
    the batch and one value suits any data scale. Small ``reg`` approaches the exact plan;
    large ``reg`` approaches the independent coupling. Each data point's partner is drawn from
    its column of the plan with ``generator``.

    Training solves it on the whole batch (``--ot-batch`` splits only the exact couplings):
    it is the choice for batches too large for an exact solve.

    Args:
        reg: entropic regularization relative to the mean cost, > 0.
        max_iter: Sinkhorn iterations at most.
        tol: stopping threshold on the marginal error; the data keep their exact marginal
            (x1 is not resampled), the source marginal is met to about this accuracy.
    """

    name = "sinkhorn"

    def __init__(self, reg: float = 0.05, max_iter: int = 300, tol: float = 1e-4) -> None:
        if not reg > 0:
            raise FlowmatchError(f"the Sinkhorn regularization must be > 0, got {reg}")
        self.reg, self.max_iter, self.tol = float(reg), int(max_iter), float(tol)

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The entropic plan P (B0, B1) in float64 on x0's device.

        On the CPU the iterations run on NumPy arrays (POT's NumPy backend has less overhead
        per iteration); elsewhere on torch tensors, on the device.
        """
        cost = squared_distances(x0, x1)  # (B0, B1)
        cost = cost / cost.mean().clamp_min(torch.finfo(cost.dtype).tiny)
        device = cost.device
        m = cost.numpy() if device.type == "cpu" else cost
        like = np if device.type == "cpu" else torch
        a = like.full((cost.shape[0],), 1.0 / cost.shape[0], dtype=like.float64)
        b = like.full((cost.shape[1],), 1.0 / cost.shape[1], dtype=like.float64)
        if device.type != "cpu":
            a, b = a.to(device), b.to(device)
        import ot

        with warnings.catch_warnings():  # an unconverged plan is still a valid coupling
            warnings.simplefilter("ignore")
            plan = ot.sinkhorn(
                a,
                b,
                m,
                self.reg,
                method="sinkhorn_log",
                numItermax=self.max_iter,
                stopThr=self.tol,
            )
        return torch.as_tensor(plan, device=device)

    def partners(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> Tensor:
        return draw_partners(self.plan(x0, x1), generator)


class ClassConditionalOT(Coupling):
    """Minibatch OT solved separately inside each class, for conditional models v(x, t, c).

    Row j of the batch carries the label ``cond[j]`` of x1[j]. The source rows at the positions
    of class c are paired, by ``inner`` (exact OT by default), only with the data rows of class
    c. Plain OT over the whole batch would send each class the source points nearest to it, so
    x0 given c would no longer follow p0 and sampling x0 ~ p0 for a chosen c would be biased;
    pairing within classes keeps x0 | c ~ p0 (the positions of a class are independent of x0).

    Args:
        inner: the OT coupling used within each class.

    References:
        Tong et al., "Improving and Generalizing Flow-Based Generative Models with Minibatch
        Optimal Transport" (2024), the conditional variant of OT-CFM.

    Example:
        >>> x0 = torch.tensor([[0.0], [10.0], [1.0]])
        >>> x1 = torch.tensor([[9.0], [0.5], [2.0]])
        >>> c = torch.tensor([0, 0, 1])
        >>> ClassConditionalOT().pair(x0, x1, c)[0].squeeze(1).tolist()
        [10.0, 0.0, 1.0]
    """

    name = "class-ot"
    one_to_one = True
    blockwise = True

    def __init__(self, inner: _MinibatchOT | None = None) -> None:
        self.inner = inner if inner is not None else ExactOT()

    def _pair(
        self, x0: Tensor, x1: Tensor, cond: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """Return (x0', x1) where x0' is x0 permuted within the positions of each class."""
        if cond is None:
            raise FlowmatchError(
                "the class-ot coupling pairs within classes and needs the labels: pass cond (B,)"
            )
        labels = cond.reshape(cond.shape[0], -1)
        if labels.shape[1] != 1 or torch.is_floating_point(labels):
            raise FlowmatchError(
                f"class-ot needs integer class labels of shape (B,), got {cond.dtype} "
                f"of shape {tuple(cond.shape)}"
            )
        labels = labels.squeeze(1).cpu()  # (B,)
        idx = torch.arange(x1.shape[0])  # (B,) partner of every data row
        for c in torch.unique(labels):
            rows = (labels == c).nonzero().squeeze(1)  # (B_c,)
            dev = x0.device
            local = self.inner.partners(x0[rows.to(dev)], x1[rows.to(dev)], generator)
            idx[rows] = rows[local]
        return x0[idx.to(x0.device)], x1
