"""Embeddings of a condition c for v(x_t, t, c): class labels, continuous vectors, a learned null.

A conditional velocity network sees its condition only through one of these modules, which
turns a batch of conditions into a batch of vectors e(c) (B, dim). Each holds a learned *null*
embedding e(∅) that stands for "no condition": it is what an absent condition (``cond=None``)
maps to, and what classifier-free guidance trains by replacing c with ∅ for a random share p
of every batch, so that one network learns both v(x, t, c) and the unconditional v(x, t, ∅).

Validation is split in two. :meth:`ConditionEmbedding.check` runs once at the boundary
(sampling, likelihood, the command line) and checks everything, values included;
:meth:`ConditionEmbedding.forward` runs inside ODE solves and checks shapes and dtypes only, so
it never synchronizes with the device.

Images, texts and dicts of named parts have their encoders in
:mod:`~flowmatch.models.condition_encoders`, whose registry builds every kind.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError

__all__ = ["ClassEmbedding", "ConditionEmbedding", "VectorEmbedding"]


class ConditionEmbedding(nn.Module):
    """Map conditions c (B, ...) to embeddings e(c) (B, dim), with a learned null e(∅).

    Attributes:
        kind: the condition kind, a key of
            :data:`~flowmatch.models.condition_encoders.CONDITION_ENCODERS`.
        dim: size of the embedding.
    """

    kind: str
    dim: int

    def forward(self, cond: Tensor | None, batch: int, drop: Tensor | None = None) -> Tensor:
        """Embed a batch of conditions.

        Args:
            cond: conditions (B, ...) as :meth:`check` returns them, or None for no condition.
            batch: the batch size B (needed when ``cond`` is None).
            drop: (B,) bool, True where the condition is replaced by the null.

        Returns:
            e (B, dim): e(c_i), or e(∅) where ``cond`` is None or ``drop`` is set.
        """
        if drop is not None and (drop.shape != (batch,) or drop.dtype != torch.bool):
            raise FlowmatchError(
                f"drop must be a bool tensor of shape ({batch},), got {drop.dtype} "
                f"of shape {tuple(drop.shape)}"
            )
        null = self.null()[None].expand(batch, -1)  # (B, dim)
        if cond is None:
            return null
        self._check_shape(cond, batch)
        e = self.embed(cond)  # (B, dim)
        return e if drop is None else torch.where(drop[:, None], null, e)

    def null(self) -> Tensor:
        """The null embedding e(∅), (dim,)."""
        raise NotImplementedError

    def embed(self, cond: Tensor) -> Tensor:
        """e(c) (B, dim) of a checked batch of conditions."""
        raise NotImplementedError

    def _check_shape(self, cond: Tensor, batch: int) -> None:
        raise NotImplementedError

    def check(self, cond: Tensor | int | float | list, n: int) -> Tensor:
        """Validate user conditions for n samples and return them as a (n, ...) tensor.

        A single condition (a class label, or one vector) is repeated for all n samples.
        Raises :class:`~flowmatch.errors.FlowmatchError` with one line saying what is wrong.
        """
        raise NotImplementedError


class ClassEmbedding(ConditionEmbedding):
    """e(c) = E[c] for class labels c in {0, ..., K-1}, a table with one extra null row E[K].

    Args:
        num_classes: the number of classes K.
        dim: embedding size.

    Example:
        >>> emb = ClassEmbedding(num_classes=3, dim=4)
        >>> emb(torch.tensor([0, 2]), 2).shape
        torch.Size([2, 4])
        >>> torch.equal(emb(None, 1)[0], emb.table.weight[3])  # no condition: the null row
        True
    """

    kind = "class"

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(
                f"a class embedding needs num_classes >= 1 and dim >= 1, got {num_classes}, {dim}"
            )
        self.num_classes, self.dim = int(num_classes), int(dim)
        self.table = nn.Embedding(num_classes + 1, dim)  # row K is the null condition

    def null(self) -> Tensor:
        return self.table.weight[self.num_classes]

    def embed(self, cond: Tensor) -> Tensor:
        return self.table(cond)

    def _check_shape(self, cond: Tensor, batch: int) -> None:
        if cond.shape != (batch,) or cond.dtype.is_floating_point or cond.dtype == torch.bool:
            raise FlowmatchError(
                f"class labels must be an integer tensor of shape ({batch},), got {cond.dtype} "
                f"of shape {tuple(cond.shape)}"
            )

    def check(self, cond: Tensor | int | list, n: int) -> Tensor:
        """Class labels as a (n,) long tensor; a single label is repeated n times."""
        if isinstance(cond, (bool, float)):
            raise FlowmatchError(f"a class label must be an integer, got {cond!r}")
        c = torch.as_tensor(cond)
        if c.dtype.is_floating_point or c.dtype.is_complex or c.dtype == torch.bool:
            raise FlowmatchError(
                f"class labels must be integers 0..{self.num_classes - 1}, got dtype {c.dtype}"
            )
        if c.ndim == 0 or c.shape == (1,):
            c = c.reshape(1).expand(n)
        if c.shape != (n,):
            raise FlowmatchError(
                f"class labels must have shape ({n},), one per sample, or be a single label; "
                f"got shape {tuple(c.shape)}"
            )
        bad = (c < 0) | (c >= self.num_classes)
        if bool(bad.any()):
            raise FlowmatchError(
                f"unknown class {int(c[bad][0])}; this model knows classes "
                f"0..{self.num_classes - 1}"
            )
        return c.long()


class VectorEmbedding(ConditionEmbedding):
    """e(c) = MLP(c) for continuous conditions c in R^d (e.g. an observation), null learned.

    Args:
        cond_dim: the condition size d.
        dim: embedding size.
        hidden: hidden units of the two-layer MLP (``dim`` if None).

    Example:
        >>> emb = VectorEmbedding(cond_dim=3, dim=8)
        >>> emb(torch.randn(5, 3), 5).shape
        torch.Size([5, 8])
    """

    kind = "vector"

    def __init__(self, cond_dim: int, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        if cond_dim < 1 or dim < 1:
            raise ValueError(
                f"a vector embedding needs cond_dim >= 1 and dim >= 1, got {cond_dim}, {dim}"
            )
        hidden = dim if hidden is None else hidden
        self.cond_dim, self.dim = int(cond_dim), int(dim)
        self.net = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, dim))
        self.null_embedding = nn.Parameter(torch.zeros(dim))

    def null(self) -> Tensor:
        return self.null_embedding

    def embed(self, cond: Tensor) -> Tensor:
        return self.net(cond.to(self.null_embedding.dtype))

    def _check_shape(self, cond: Tensor, batch: int) -> None:
        if cond.shape != (batch, self.cond_dim):
            raise FlowmatchError(
                f"condition vectors must have shape ({batch}, {self.cond_dim}), "
                f"got {tuple(cond.shape)}"
            )

    def check(self, cond: Tensor | list, n: int) -> Tensor:
        """Condition vectors as a (n, d) float tensor; a single vector (d,) is repeated n times."""
        c = torch.as_tensor(cond)
        if c.dtype.is_complex or c.dtype == torch.bool:
            raise FlowmatchError(f"condition vectors must be real numbers, got dtype {c.dtype}")
        if not c.dtype.is_floating_point:
            c = c.float()
        if c.ndim == 1 or (c.ndim == 2 and c.shape[0] == 1):
            c = c.reshape(1, -1).expand(n, -1)
        if c.ndim != 2 or c.shape[1] != self.cond_dim:
            raise FlowmatchError(
                f"this model takes condition vectors of size {self.cond_dim}, got shape "
                f"{tuple(c.shape)}; pass ({n}, {self.cond_dim}) or ({self.cond_dim},)"
            )
        if c.shape[0] != n:
            raise FlowmatchError(
                f"got {c.shape[0]} condition vectors for {n} samples; pass one per sample "
                "or a single one for all"
            )
        if not bool(torch.isfinite(c).all()):
            raise FlowmatchError("condition vectors contain NaN or Inf; pass finite values")
        return c
