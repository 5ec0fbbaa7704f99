"""The optimal velocity v*(x, t) = E[x1 - x0 | x_t = x] of the linear path, in closed form.

For the source x0 ~ N(0, I), the path x_t = (1 - t) x0 + t x1 and the independent coupling,
flow matching's loss E || v(x_t, t) - (x1 - x0) ||^2 is minimized by the conditional mean
v*(x, t) = E[x1 - x0 | x_t = x] (the tutorial's marginal velocity). It has a closed form when
p_data is

* a finite set of points y_1..y_N (the empirical distribution of a training set): given
  x1 = y_i, x_t ~ N(t y_i, (1 - t)^2 I), so the posterior over the points is the softmax
  w_i(x, t) ∝ exp(-|x - t y_i|^2 / (2 (1 - t)^2)) and, since x1 - x0 = (y_i - x) / (1 - t)
  on that branch, v*(x, t) = (sum_i w_i y_i - x) / (1 - t);
* a Gaussian mixture sum_k pi_k N(mu_k, Sigma_k): given component k, (x_t, x1 - x0) is jointly
  Gaussian with C_k = Cov x_t = (1 - t)^2 I + t^2 Sigma_k and Cov(x1 - x0, x_t) =
  t Sigma_k - (1 - t) I, so v*(x, t) = sum_k w_k [mu_k + (t Sigma_k - (1 - t) I) C_k^{-1}
  (x - t mu_k)] with w_k ∝ pi_k N(x; t mu_k, C_k).

:class:`OptimalVelocity` is a :class:`~flowmatch.models.VelocityModel`, so it goes wherever a
trained network does: ``FlowModel(OptimalVelocity.empirical(z), mean, std)`` samples, inverts
and computes log-densities. It works in the units of the points it is given; inside a
``FlowModel`` those must be the flow's standardized units z = (x - mean) / std (see
:func:`flowmatch.evaluation.oracle.oracle_flow`, which standardizes for you).

Numerics: everything is computed in float64 (the result is cast back to the input's dtype);
the posterior weights are a log-sum-exp streamed over blocks of points, so neither N x B
weights nor their exponentials are ever held whole, and no weight underflows to 0/0. Near
t = 1 the weights become one-hot on the nearest point and v* ~ (y_nearest - x) / (1 - t)
diverges off the data, so t is clamped to [0, 1 - ``T_EPS``]: v*(x, 1) means v*(x, 1 - 1e-6).

References:
    Lipman et al., "Flow Matching for Generative Modeling" (2023); Liu et al., "Flow Straight
    and Fast" (2023); Kamb & Ganguli, "An analytic theory of creativity in convolutional
    diffusion models" (2024) (the empirical optimum memorizes its training set).
"""

from __future__ import annotations

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int, check_points
from flowmatch.models.base import VelocityModel, broadcast_time
from flowmatch.models.conditioning import ClassEmbedding

__all__ = ["T_EPS", "OptimalVelocity"]

T_EPS = 1e-6
"""t is clamped to [0, 1 - T_EPS] before v* is evaluated (v* of points diverges at t = 1)."""

POINT_CHUNK = 4096
"""Points per block of the streamed log-sum-exp."""

QUERY_CHUNK = 1024
"""Query points per block: blocks of QUERY_CHUNK x POINT_CHUNK float64 weights (32 MiB)."""


class OptimalVelocity(VelocityModel):
    """v*(x, t, c) = E[x1 - x0 | x_t = x, c] for the linear path from N(0, I), in closed form.

    Build it with :meth:`empirical` (a set of points) or :meth:`gaussian_mixture`. With
    ``labels`` (one class per point, or per component) it is conditional: v*(x, t, c) uses the
    points of class c only, and ``cond=None`` (or a dropped condition) gives the
    unconditional v* of all points, the null condition of a trained network. ``condition`` is
    then a :class:`~flowmatch.models.ClassEmbedding`, kept for its label checks only (its
    table is never used). The model has no trainable parameters.

    A mixture component with covariance 0 is a point, so the empirical v* is the mixture v*
    with Sigma_k = 0; the two are kept apart because N points need no D x D matrices.

    Attributes:
        shape: the shape of one sample.
        points: (N, D) float64 points or component means mu_k.
        eigvals: (K, D) eigenvalues of each Sigma_k, or None for points.
        eigvecs: (K, D, D) eigenvectors (columns) of each Sigma_k, or None (points, or all
            covariances diagonal).
        log_weights: (N,) log pi_k.
        labels: (N,) class of each point or component, or None.

    Example:
        >>> import torch
        >>> v = OptimalVelocity.empirical(torch.tensor([[1.0, 2.0]]))
        >>> v(torch.zeros(1, 2), 0.0)  # one point: the straight line to it, x1 - x0
        tensor([[1., 2.]])
    """

    def __init__(
        self,
        points: Tensor,
        log_weights: Tensor,
        eigvals: Tensor | None = None,
        eigvecs: Tensor | None = None,
        labels: Tensor | None = None,
        num_classes: int | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.shape = tuple(shape) if shape is not None else (points.shape[1],)
        self.register_buffer("points", points.double())
        self.register_buffer("log_weights", log_weights.double())
        self.register_buffer("eigvals", None if eigvals is None else eigvals.double())
        self.register_buffer("eigvecs", None if eigvecs is None else eigvecs.double())
        self.register_buffer("labels", None if labels is None else labels.long())
        if labels is not None:
            k = int(labels.max()) + 1 if num_classes is None else num_classes
            self.condition = ClassEmbedding(k, 1)

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def empirical(
        cls, points: Tensor, labels: Tensor | None = None, *, num_classes: int | None = None
    ) -> OptimalVelocity:
        """v* of the uniform distribution on ``points`` (N, *shape), in their units.

        Args:
            points: the data set, (N, D) or (N, *shape), finite.
            labels: optional (N,) integer classes 0..K-1 for the conditional v*(x, t, c).
            num_classes: K, if some classes have no points (default: max label + 1).

        Example:
            >>> import torch
            >>> v = OptimalVelocity.empirical(torch.tensor([[0.0], [2.0]]), torch.tensor([0, 1]))
            >>> v(torch.zeros(1, 1), 0.0, torch.tensor([1]))  # class 1 is the point 2
            tensor([[2.]])
        """
        check_points(points, "points")
        y = points.reshape(points.shape[0], -1)  # (N, D)
        labels = _check_labels(labels, y.shape[0], num_classes, "points")
        log_w = torch.full((y.shape[0],), 0.0, dtype=torch.float64, device=y.device)
        return cls(y, log_w, labels=labels, num_classes=num_classes, shape=points.shape[1:])

    @classmethod
    def gaussian_mixture(
        cls,
        means: Tensor,
        covariances: Tensor,
        weights: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        num_classes: int | None = None,
    ) -> OptimalVelocity:
        """v* of sum_k pi_k N(mu_k, Sigma_k), in the units of ``means``.

        Args:
            means: (K, D) component means mu_k.
            covariances: (K, D, D) symmetric positive semi-definite Sigma_k, or (K, D) the
                diagonals of diagonal ones (variances, not standard deviations).
            weights: (K,) positive mixture weights pi_k (normalized here); default uniform.
            labels: optional (K,) class of each component for the conditional v*.
            num_classes: K classes, if some have no component.

        Example:
            >>> import torch
            >>> v = OptimalVelocity.gaussian_mixture(torch.zeros(1, 1), torch.ones(1, 1))
            >>> v(torch.ones(1, 1), 0.5)  # N(0, 1) data: v* = (2t - 1) x / ((1-t)^2 + t^2) = 0
            tensor([[0.]])
        """
        check_points(means, "means")
        if means.ndim != 2:
            raise FlowmatchError(f"means must have shape (K, D), got {tuple(means.shape)}")
        k, d = means.shape
        cov = torch.as_tensor(covariances).to(means.device, torch.float64)
        check_points(cov, "covariances")
        eigvecs = None
        if cov.shape == (k, d):
            eigvals = cov
        elif cov.shape == (k, d, d):
            if not torch.allclose(cov, cov.transpose(1, 2), atol=1e-10):
                raise FlowmatchError("covariances must be symmetric matrices")
            eigvals, eigvecs = torch.linalg.eigh(cov)  # (K, D), (K, D, D)
            eigvals = eigvals.clamp_min(0.0)  # round-off of a semi-definite matrix
        else:
            raise FlowmatchError(
                f"covariances must have shape ({k}, {d}, {d}) or ({k}, {d}) for diagonal ones, "
                f"got {tuple(cov.shape)}"
            )
        if bool((eigvals < -1e-10).any()):
            raise FlowmatchError("covariances must be positive semi-definite")
        if weights is None:
            log_w = torch.full((k,), -torch.log(torch.tensor(float(k))).item())
        else:
            w = torch.as_tensor(weights, dtype=torch.float64)
            if w.shape != (k,) or not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
                raise FlowmatchError(f"weights must be ({k},) positive numbers, got {w.tolist()}")
            log_w = (w / w.sum()).log()
        labels = _check_labels(labels, k, num_classes, "components")
        return cls(
            means,
            log_w.to(means.device),
            eigvals.clamp_min(0.0),
            eigvecs,
            labels=labels,
            num_classes=num_classes,
        )

    # -- the field --------------------------------------------------------------------------
    def forward(
        self,
        xt: Tensor,
        t: Tensor | float,
        cond: Tensor | None = None,
        *,
        drop: Tensor | None = None,
    ) -> Tensor:
        """v*(x_t, t, c) for x_t (B, *shape), t scalar or (B,), c (B,) labels or None.

        ``drop`` (B,) bool replaces c by the null condition (all points) where set.
        """
        t = broadcast_time(t, xt.shape[0], xt)
        if cond is not None and self.labels is None:
            raise FlowmatchError("this optimal velocity has no labels; pass cond=None")
        labels = None
        if cond is not None:
            labels = cond.reshape(xt.shape[0]).long()
            if drop is not None:
                labels = torch.where(drop, -1, labels)
        return self.velocity(xt, t, labels)

    def velocity(self, xt: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        """v* for x_t (B, *shape), t (B,) and class labels c (B,) (-1: none) or None."""
        return self.posterior(xt, t, c)[0].to(xt.dtype).reshape(xt.shape)

    def conditional_variance(self, xt: Tensor, t: Tensor | float, cond: Tensor | None = None):
        """tr Cov[x1 - x0 | x_t, c] (B,), float64: the FM loss that no field can remove.

        E || v(x_t, t) - (x1 - x0) ||^2 = E || v - v* ||^2 + E tr Cov[x1 - x0 | x_t], so the
        mean of this over x_t ~ p_t is the FM loss of v* (summed over features), its minimum.
        """
        t = broadcast_time(t, xt.shape[0], xt)
        return self.posterior(xt, t, None if cond is None else cond.reshape(-1).long())[1]

    def posterior(self, xt: Tensor, t: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """v* (B, D) and tr Cov[x1 - x0 | x_t] (B,), float64, grouped by class and chunked."""
        x = xt.reshape(xt.shape[0], -1).to(self.points.device, torch.float64)  # (B, D)
        t = t.to(x).clamp(0.0, 1.0 - T_EPS)  # (B,)
        if c is None or self.labels is None:
            return self._chunked(x, t, None)
        v = x.new_empty(x.shape)
        var = x.new_empty(x.shape[0])
        for label in torch.unique(c).tolist():  # one group per class, -1 for "all points"
            rows = (c == label).nonzero().squeeze(1)
            subset = None if label < 0 else (self.labels == label).nonzero().squeeze(1)
            if subset is not None and subset.numel() == 0:
                raise FlowmatchError(f"class {label} has no points in this optimal velocity")
            vi, vari = self._chunked(x[rows], t[rows], subset)
            v = v.index_copy(0, rows, vi)  # out of place, so autograd sees it
            var = var.index_copy(0, rows, vari)
        return v, var

    def _chunked(self, x: Tensor, t: Tensor, subset: Tensor | None) -> tuple[Tensor, Tensor]:
        parts = [
            self._stream(x[i : i + QUERY_CHUNK], t[i : i + QUERY_CHUNK], subset)
            for i in range(0, x.shape[0], QUERY_CHUNK)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _stream(self, x: Tensor, t: Tensor, subset: Tensor | None) -> tuple[Tensor, Tensor]:
        """Log-sum-exp over blocks of points: running max m, normalizer s and weighted sums of
        the branches' first and second moments, rescaled whenever m grows."""
        n = self.points.shape[0] if subset is None else subset.numel()
        m = s = first = second = None
        for start in range(0, n, POINT_CHUNK):
            idx = torch.arange(start, min(start + POINT_CHUNK, n), device=x.device)
            if subset is not None:
                idx = subset[idx]
            logit, moments = self._branches(x, t, idx)  # (B, n)
            m_new = logit.amax(1) if m is None else torch.maximum(m, logit.amax(1))  # (B,)
            p = (logit - m_new[:, None]).exp()  # (B, n), in (0, 1]
            block_first, block_second = moments(p)  # (B, D), (B,)
            if m is None:
                s, first, second = p.sum(1), block_first, block_second
            else:
                scale = (m - m_new).exp()  # (B,)
                s = s * scale + p.sum(1)
                first = first * scale[:, None] + block_first
                second = second * scale + block_second
            m = m_new
        first, second = first / s[:, None], second / s  # posterior means
        var = (second - first.square().sum(1)).clamp_min(0.0)  # E|a|^2 - |E a|^2
        if self.eigvals is None:  # moments of x1 = y: v* = (E y - x) / (1 - t)
            sb = 1.0 - t
            return (first - x) / sb[:, None], var / sb.square()
        return first, var

    def _branches(self, x: Tensor, t: Tensor, idx: Tensor):
        """For each query and point or component j of ``idx``: log pi_j p(x_t | j) up to a
        per-query constant (B, n), and a map from weights p (B, n) to sum_j p_j E[a | x_t, j]
        (B, D) and sum_j p_j E[|a|^2 | x_t, j] (B,), where a = x1 for points (so no (B, n, D)
        tensor is formed) and a = x1 - x0 for Gaussian components."""
        y = self.points[idx]  # (n, D)
        tb, sb = t[:, None], (1.0 - t)[:, None]  # (B, 1)
        if self.eigvals is None:
            # -|x - t y|^2 / (2 (1-t)^2) without the |x|^2 every branch shares
            logit = (tb * (x @ y.T) - 0.5 * tb.square() * y.square().sum(1)) / sb.square()
            y2 = y.square().sum(1)  # (n,)
            return logit + self.log_weights[idx], lambda p: (p @ y, p @ y2)
        lam = self.eigvals[idx][None]  # (1, n, D)
        t3, s3 = tb[:, :, None], sb[:, :, None]  # (B, 1, 1)
        r = x[:, None] - t3 * y[None]  # (B, n, D): x - t mu_j
        if self.eigvecs is not None:
            r = torch.einsum("bnd,nde->bne", r, self.eigvecs[idx])  # in Sigma_j's eigenbasis
        c = s3.square() + t3.square() * lam  # (B, n, D): Var x_t
        cov = t3 * lam - s3  # Cov(x1 - x0, x_t)
        logit = -0.5 * (r.square() / c + c.log()).sum(2) + self.log_weights[idx]
        du = cov / c * r  # E[x1 - x0 | x_t, j] - mu_j, in the eigenbasis
        var = (lam + 1.0 - cov.square() / c).sum(2)  # tr Cov[x1 - x0 | x_t, j] (B, n)
        if self.eigvecs is not None:
            du = torch.einsum("bne,nde->bnd", du, self.eigvecs[idx])
        u = y[None] + du  # (B, n, D)
        second = var + u.square().sum(2)
        return logit, lambda p: (torch.einsum("bn,bnd->bd", p, u), (p * second).sum(1))


def _check_labels(
    labels: Tensor | None, n: int, num_classes: int | None, what: str
) -> Tensor | None:
    """(n,) integer labels in 0..K-1, or None."""
    if labels is None:
        if num_classes is not None:
            raise FlowmatchError("num_classes was given without labels")
        return None
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (n,):
        raise FlowmatchError(
            f"labels must be ({n},) integers, one per {what[:-1]}; got {labels.dtype} of shape "
            f"{tuple(labels.shape)}"
        )
    k = int(labels.max()) + 1 if num_classes is None else check_int(num_classes, "num_classes")
    if bool((labels < 0).any()) or bool((labels >= k).any()):
        raise FlowmatchError(f"labels must lie in 0..{k - 1}, got {labels.unique().tolist()}")
    return labels.long()
