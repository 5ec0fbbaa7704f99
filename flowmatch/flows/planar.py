"""The planar flow layer f(z) = z + û h(wᵀz + b), with its invertibility constraint and inverse.

Notation follows sections 1 and 2 of the theory text: a layer maps z (towards the noise end)
to x = f(z) (towards the data end), and every layer returns the log-absolute-determinant of
the Jacobian of the direction it was called in (``ladj``), so that for x = f(z)

    log p_x(x) = log p_z(z) - log|det ∂f/∂z|.

References:
    Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015), section 4.1
    and appendix A.1 (the constraint on u).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError
from flowmatch.flows.monotone import solve_increasing

__all__ = ["PLANAR_ACTIVATIONS", "LeakyReLU", "PlanarActivation", "PlanarLayer", "Tanh"]


class PlanarActivation:
    """The scalar gate h of a planar layer and what the layer needs to know about it.

    With s = wᵀû > -1 the layer moves points along û by h(a), a = wᵀz + b, and the scalar
    map a -> a + s h(a) must be strictly increasing. A subclass gives h, the slope of that map
    1 + s h'(a) as a sum of non-negative terms (so that it stays positive in floating point
    however close s is to -1), and :meth:`solve`, the map's inverse.
    """

    name: str = ""

    def h(self, a: Tensor) -> Tensor:
        raise NotImplementedError

    def slope(self, a: Tensor, one_plus_s: Tensor) -> Tensor:
        """1 + s h'(a) > 0, given 1 + s > 0 (computed without forming s)."""
        raise NotImplementedError

    def h_and_slope(self, a: Tensor, one_plus_s: Tensor) -> tuple[Tensor, Tensor]:
        """(h(a), 1 + s h'(a)) in one pass."""
        return self.h(a), self.slope(a, one_plus_s)

    def solve(self, y: Tensor, one_plus_s: Tensor) -> Tensor:
        """The a with a + s h(a) = y, where s = one_plus_s - 1 > -1; (N,) -> (N,)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Tanh(PlanarActivation):
    """h = tanh, h' = sech^2, and 1 + s h' = tanh^2 + sech^2 (1 + s).

    With s > -1 the map a -> a + s tanh(a) is strictly increasing but has no closed-form
    inverse; :meth:`solve` finds it by safeguarded Newton on the bracket [y - |s|, y + |s|],
    which holds the root because |tanh| <= 1.
    """

    name = "tanh"

    def h(self, a: Tensor) -> Tensor:
        return torch.tanh(a)

    def slope(self, a: Tensor, one_plus_s: Tensor) -> Tensor:
        return self.h_and_slope(a, one_plus_s)[1]

    def h_and_slope(self, a: Tensor, one_plus_s: Tensor) -> tuple[Tensor, Tensor]:
        t = torch.tanh(a)
        sech2 = torch.cosh(a).square().reciprocal()  # not 1 - t^2: exact where |a| is large
        return t, t.square() + sech2 * one_plus_s

    def solve(self, y: Tensor, one_plus_s: Tensor) -> Tensor:
        s = one_plus_s - 1.0

        def g_and_slope(a: Tensor) -> tuple[Tensor, Tensor]:
            t, slope = self.h_and_slope(a, one_plus_s)
            return a + s * t, slope

        # a ~ y / (1 + s) near 0 and a ~ y -/+ s far out; tanh blends the two as a first guess
        init = y - s * torch.tanh(y / one_plus_s)
        return solve_increasing(g_and_slope, y, y - s.abs(), y + s.abs(), init=init)


class LeakyReLU(PlanarActivation):
    """h(a) = a for a >= 0 and alpha a below, with 0 < alpha <= 1.

    The map a -> a + s h(a) is linear on each side of 0 with slopes 1 + s and
    1 + alpha s = (1 - alpha) + alpha (1 + s), both > 0 when s > -1, and it keeps the sign of
    a, so the inverse is closed-form: y / (1 + s) for y >= 0 and y / (1 + alpha s) below.

    Args:
        negative_slope: alpha, in (0, 1].
    """

    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        if not 0.0 < negative_slope <= 1.0:
            raise FlowmatchError(
                f"the leaky ReLU's negative slope must be in (0, 1] for the planar layer to be "
                f"invertible, got {negative_slope}"
            )
        self.negative_slope = float(negative_slope)

    def h(self, a: Tensor) -> Tensor:
        return F.leaky_relu(a, self.negative_slope)

    def slope(self, a: Tensor, one_plus_s: Tensor) -> Tensor:
        alpha = self.negative_slope
        below = (1.0 - alpha) + alpha * one_plus_s
        return torch.where(a >= 0, one_plus_s, below)

    def solve(self, y: Tensor, one_plus_s: Tensor) -> Tensor:
        alpha = self.negative_slope
        below = (1.0 - alpha) + alpha * one_plus_s
        return torch.where(y >= 0, y / one_plus_s, y / below)

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"


IDENTITY_WU = math.log(math.e - 1.0)  # softplus(IDENTITY_WU) = 1, i.e. wᵀû = 0
INIT_SCALE = 0.01  # size of the initial û: each layer starts close to the identity

PLANAR_ACTIVATIONS: dict[str, type[PlanarActivation]] = {"tanh": Tanh, "leaky_relu": LeakyReLU}
"""Gates h by name; the keys are the ``--planar-activation`` choices."""


class PlanarLayer(nn.Module):
    """One planar layer f(z) = z + û h(wᵀz + b), invertible by construction.

    The free parameters are u, w in R^D and b in R. The vector actually used is

        û = u + (m(wᵀu) - wᵀu) w / ||w||^2,   m(x) = -1 + softplus(x),

    so that wᵀû = m(wᵀu) > -1. With 0 <= h' <= 1 this makes the Jacobian determinant

        det ∂f/∂z = 1 + h'(wᵀz + b) wᵀû = (1 - h') + h' (1 + wᵀû)

    a sum of non-negative terms, positive everywhere; the layer computes it in this form, with
    1 + wᵀû = softplus(wᵀu) (floored at the smallest normal number of the dtype), so it never
    forms 1 + wᵀû by a cancelling subtraction and stays positive in floating point.

    Inverse: with a = wᵀz + b, the image x = f(z) has wᵀx + b = a + (wᵀû) h(a), a strictly
    increasing scalar equation in a. Solving it gives a, and then z = x - û h(a). Gradients of
    the inverse (needed to train by maximum likelihood through it) come from the implicit
    function theorem, applied as one Newton step taken with autograd on at the solution.

    Args:
        dim: D, the number of features.
        activation: a key of :data:`PLANAR_ACTIVATIONS` or a :class:`PlanarActivation`.
        u: optional initial u (D,). By default u is set so that wᵀû = 0 and û is a small
            random vector orthogonal to w: the layer starts close to the identity, and a
            stack of them starts close to its base distribution.
        w: optional initial w (D,), nonzero; N(0, I / D) by default.
        b: optional initial b (a number or a 0-dim tensor); N(0, 0.25) by default.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> layer = PlanarLayer(2).double()
        >>> z = torch.randn(5, 2, dtype=torch.float64)
        >>> x, ladj = layer(z)
        >>> z_back, ladj_inv = layer.inverse(x)
        >>> bool(torch.allclose(z_back, z)) and bool(torch.allclose(ladj_inv, -ladj))
        True

    References:
        Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015).
    """

    def __init__(
        self,
        dim: int,
        activation: str | PlanarActivation = "tanh",
        *,
        u: Tensor | None = None,
        w: Tensor | None = None,
        b: Tensor | float | None = None,
    ) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise FlowmatchError(f"a planar layer needs dim >= 1 features, got {dim!r}")
        self.dim = dim
        self.activation = _activation(activation)
        w0 = _param(w, "w", (dim,)) if w is not None else torch.randn(dim) / math.sqrt(dim)
        if u is not None:
            u0 = _param(u, "u", (dim,))
        else:  # near the identity: wᵀu = log(e - 1) makes wᵀû = 0, plus a small û ⟂ w
            noise = INIT_SCALE * torch.randn(dim) / math.sqrt(dim)
            noise = noise - (noise @ w0) / (w0 @ w0) * w0
            u0 = IDENTITY_WU * w0 / (w0 @ w0) + noise
        self.w = nn.Parameter(w0)
        self.u = nn.Parameter(u0)
        self.b = nn.Parameter(_param(b, "b", ()) if b is not None else 0.5 * torch.randn(()))
        if w is not None and not bool(self.w.detach().square().sum() > 0):
            raise FlowmatchError(
                "w must be nonzero (and ||w||^2 must not underflow): the constraint on u "
                "divides by ||w||^2"
            )

    # -- the constrained parameters ---------------------------------------------------------
    def one_plus_wu(self) -> Tensor:
        """1 + wᵀû = softplus(wᵀu) > 0, a 0-dim tensor (floored at the dtype's tiny)."""
        return self.constrained()[1]

    def u_hat(self) -> Tensor:
        """û = u + (m(wᵀu) - wᵀu) w / ||w||^2, (D,)."""
        return self.constrained()[0]

    def constrained(self) -> tuple[Tensor, Tensor]:
        """(û, 1 + wᵀû): the vector the layer moves along and softplus(wᵀu), its slope at 0."""
        c = torch.dot(self.w, self.u)
        one_plus_s = F.softplus(c).clamp_min(torch.finfo(c.dtype).tiny)
        u_hat = self.u + ((one_plus_s - 1.0) - c) * self.w / self.w.square().sum()
        return u_hat, one_plus_s

    # -- the two directions -----------------------------------------------------------------
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """x = f(z) and log|det ∂f/∂z|: (B, D) -> ((B, D), (B,))."""
        _check_shape(z, self.dim, "z")
        u_hat, one_plus_s = self.constrained()
        a = z @ self.w + self.b  # (B,)
        h, slope = self.activation.h_and_slope(a, one_plus_s)
        x = z + h[:, None] * u_hat  # (B, D)
        return x, slope.log()

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f^{-1}(x) and log|det ∂f^{-1}/∂x| = -log|det ∂f/∂z|: (B, D) -> ((B, D), (B,))."""
        _check_shape(x, self.dim, "x")
        u_hat, one_plus_s = self.constrained()
        y = x @ self.w + self.b  # (B,) = a + s h(a)
        a = self.activation.solve(y.detach(), one_plus_s.detach())
        h, slope = self.activation.h_and_slope(a, one_plus_s)
        if torch.is_grad_enabled() and (y.requires_grad or one_plus_s.requires_grad):
            # a(θ, x) solves G = a + s h(a) - y = 0, so da = -(∂G/∂θ, ∂G/∂x) / G'(a): one
            # Newton step from the detached solution has exactly this gradient, and its value
            # only removes the last rounding error.
            a = a - (a + (one_plus_s - 1.0) * h - y) / slope.detach()
            h, slope = self.activation.h_and_slope(a, one_plus_s)
        z = x - h[:, None] * u_hat
        return z, -slope.log()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, activation={self.activation!r}"


def _check_shape(x: Tensor, dim: int, name: str) -> None:
    """A shape-only check (no host sync), cheap enough for every call."""
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != dim:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise FlowmatchError(f"{name} must be a tensor of shape (B, {dim}), got {shape}")


def _activation(activation: str | PlanarActivation) -> PlanarActivation:
    if isinstance(activation, PlanarActivation):
        return activation
    if activation not in PLANAR_ACTIVATIONS:
        raise FlowmatchError(
            f"unknown planar activation {activation!r}; choose one of: "
            f"{', '.join(PLANAR_ACTIVATIONS)}"
        )
    return PLANAR_ACTIVATIONS[activation]()


def _param(value: Tensor | float, name: str, shape: tuple[int, ...]) -> Tensor:
    t = torch.as_tensor(value).detach().clone()
    if not torch.is_floating_point(t):
        t = t.to(torch.get_default_dtype())
    if tuple(t.shape) != shape:
        raise FlowmatchError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise FlowmatchError(f"{name} contains NaN or Inf; pass finite parameters")
    return t
