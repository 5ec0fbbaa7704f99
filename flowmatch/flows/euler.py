"""The Euler step x = z + dt v(z, t) as a residual layer of a discrete flow (theory, section 3).

Section 3 of the theory text reads a planar layer z + u h(wᵀz + b) with u = dt ũ as one Euler
step of dx/dt = v_t(x). Conversely, any velocity field gives a residual layer

    f(z) = z + dt v(z, t),   ∂f/∂z = I + dt J_v(z),

whose log-det is log|det(I + dt J_v)| = dt tr J_v + O(dt^2) = dt div v + O(dt^2). A stack of
N such layers at t_k = k / N with dt = 1 / N *is* the Euler solver with N steps, and its
log-density, log p_0(z_0) - Σ_k log|det(I + dt J_v)|, tends to the instantaneous change of
variables log p_0(x_0) - int_0^1 div v_t(x_t) dt as N grows.

The log-det is exact (the D x D Jacobian by ``torch.func.jacrev``, then ``slogdet``), so the
layer is for small D (at most :data:`EULER_MAX_DIM` features).

Example:
    >>> import torch
    >>> from flowmatch import FlowModel
    >>> from flowmatch.models import MLPVelocity
    >>> from flowmatch.solvers import solve
    >>> _ = torch.manual_seed(0)
    >>> flow = FlowModel(MLPVelocity(2, width=8, depth=1), torch.zeros(2), torch.ones(2)).double()
    >>> stack = euler_stack(flow, steps=8)
    >>> z = torch.randn(4, 2, dtype=torch.float64)
    >>> x, ladj = stack.stack(z)
    >>> bool(torch.allclose(x, solve(flow.field(), z, solver="euler", steps=8).x, atol=1e-14))
    True
    >>> bool(torch.allclose(stack.stack.inverse(x)[0], z, atol=1e-12))
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import jacrev

from flowmatch.data.sources import GaussianSource
from flowmatch.errors import FlowmatchError, check_int
from flowmatch.flows.continuous import FlowModel
from flowmatch.flows.discrete import DiscreteFlowModel
from flowmatch.flows.stack import FlowStack

__all__ = ["EULER_MAX_DIM", "EulerStep", "euler_stack"]

EULER_MAX_DIM = 64
"""The largest D an Euler-step layer accepts: its exact log-det costs D vector-Jacobian
products and a D x D determinant per sample. Above this, use the continuous flow's
:meth:`~flowmatch.flows.continuous.FlowModel.log_prob` (Hutchinson's divergence)."""

NEWTON_MAX_ITER = 50
"""Newton iterations the inverse may take before it refuses."""


class EulerStep(nn.Module):
    """One Euler step x = f(z) = z + dt v(z, t) as an invertible layer with an exact log-det.

    ``forward(z) -> (x, log|det(I + dt J_v(z))|)``, and ``inverse(x) -> (z, -log|det|)`` solves
    z + dt v(z, t) = x by Newton's method, started from z = x - dt v(x, t) (off by O(dt^2)).

    Invertibility: the step is a bijection of R^D when dt · Lip(v_t) < 1, for then
    z -> x - dt v(z, t) is a contraction with a unique fixed point; a stack of N steps over
    [0, 1] needs N > sup_t Lip(v_t). The layer cannot certify that global bound. It refuses,
    with a :class:`~flowmatch.errors.FlowmatchError`, where it sees a violation: a point
    with det(I + dt J_v) <= 0 (the step folds space there), or Newton's method not
    converging. Gradients of the inverse follow the implicit function theorem: one Newton
    step taken with autograd on, at the solution.

    The velocity network works on (B, *shape) and the layer on flattened (B, D) states, as
    every layer of a :class:`~flowmatch.flows.stack.FlowStack` does. A conditional network
    is called with its null condition (the unconditional field).

    Args:
        velocity: the network v(x, t) (a :class:`~flowmatch.models.VelocityModel`, with a
            ``shape``), shared, not copied: layers built from one field share its weights.
        t: the time of the step.
        dt: the step size (negative steps backward in time).

    Example:
        >>> import torch
        >>> from flowmatch.models import MLPVelocity
        >>> _ = torch.manual_seed(0)
        >>> layer = EulerStep(MLPVelocity(2, width=8, depth=1).double(), t=0.25, dt=0.125)
        >>> z = torch.randn(5, 2, dtype=torch.float64)
        >>> x, ladj = layer(z)
        >>> z_back, ladj_inv = layer.inverse(x)
        >>> bool(torch.allclose(z_back, z)) and bool(torch.allclose(ladj_inv, -ladj))
        True

    References:
        Chen et al., "Neural Ordinary Differential Equations" (2018), section 2 (residual
        networks as Euler discretizations); Behrmann et al., "Invertible Residual Networks"
        (ICML 2019) (invertibility when the residual branch is a contraction).
    """

    def __init__(self, velocity: nn.Module, t: float, dt: float) -> None:
        super().__init__()
        shape = tuple(int(s) for s in getattr(velocity, "shape", ()))
        if not shape:
            raise FlowmatchError(
                f"an Euler step needs a velocity network with a sample shape, got "
                f"{type(velocity).__name__}"
            )
        self.velocity = velocity
        self.shape = shape
        self.dim = math.prod(shape)
        if self.dim > EULER_MAX_DIM:
            raise FlowmatchError(
                f"an Euler-step layer forms the exact D x D Jacobian; D = {self.dim} is more than "
                f"{EULER_MAX_DIM}: use FlowModel.log_prob (Hutchinson) for this model"
            )
        self.t, self.dt = float(t), float(dt)
        if not (math.isfinite(self.t) and math.isfinite(self.dt)):
            raise FlowmatchError(f"t and dt must be finite, got t={t!r}, dt={dt!r}")

    # -- the field on flat states ---------------------------------------------------------------
    def v(self, z: Tensor) -> Tensor:
        """v(z, t) on flat states: (B, D) -> (B, D)."""
        t = z.new_tensor(self.t)  # 0-dim, as the solvers pass it
        return self.velocity(z.reshape(-1, *self.shape), t).reshape(z.shape[0], self.dim)

    def velocity_and_jacobian(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """v(z, t) (B, D) and its per-sample Jacobian J_v (B, D, D), rows independent.

        The rows of J are the gradients of Σ_b v_i(z_b): with independent samples, sample b's
        block is that sample's own Jacobian.
        """

        def summed(y: Tensor) -> tuple[Tensor, Tensor]:
            v = self.v(y)
            return v.sum(dim=0), v

        jac, v = jacrev(summed, has_aux=True)(z)  # (D, B, D): jac[i, b, j] = ∂v_i(z_b)/∂z_bj
        return v, jac.permute(1, 0, 2)

    def _log_det(self, jac: Tensor) -> Tensor:
        """log|det(I + dt J)| (B,), refusing a folding step (det <= 0)."""
        eye = torch.eye(self.dim, dtype=jac.dtype, device=jac.device)
        sign, logabs = torch.linalg.slogdet(eye + self.dt * jac)
        if bool((sign <= 0).any()):
            raise FlowmatchError(
                f"the Euler step at t={self.t:g} with dt={self.dt:g} folds space "
                f"(det(I + dt J) <= 0 at {int((sign <= 0).sum())} points), so it is not "
                "invertible: take more, smaller steps"
            )
        return logabs

    # -- the two directions -----------------------------------------------------------------
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """x = z + dt v(z, t) and log|det(I + dt J_v(z))|: (B, D) -> ((B, D), (B,))."""
        _check_shape(z, self.dim, "z")
        v, jac = self.velocity_and_jacobian(z)
        x = torch.add(z, v, alpha=self.dt)  # (B, D), the solver's own Euler update
        return x, self._log_det(jac)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z with z + dt v(z, t) = x, and -log|det(I + dt J_v(z))|: (B, D) -> ((B, D), (B,)).

        Newton's method on g(z) = z + dt v(z, t) - x, to a residual of a few ulps of x.
        """
        _check_shape(x, self.dim, "x")
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        tol = 16 * torch.finfo(x.dtype).eps * (1.0 + float(x.detach().abs().max()))
        with torch.no_grad():
            x0 = x.detach()
            z = x0 - self.dt * self.v(x0)  # the explicit guess, O(dt^2) off
            for _ in range(NEWTON_MAX_ITER):
                v, jac = self.velocity_and_jacobian(z)
                g = z + self.dt * v - x0  # (B, D)
                if float(g.abs().max()) <= tol:
                    break
                step = torch.linalg.solve(eye + self.dt * jac, g.unsqueeze(-1)).squeeze(-1)
                z = z - step
            else:
                raise FlowmatchError(
                    f"the Euler step at t={self.t:g} with dt={self.dt:g} did not invert in "
                    f"{NEWTON_MAX_ITER} Newton steps (dt · Lip(v) may be >= 1): take more, "
                    "smaller steps"
                )
        params_need_grad = any(p.requires_grad for p in self.velocity.parameters())
        if torch.is_grad_enabled() and (x.requires_grad or params_need_grad):
            # z(θ, x) solves G = z + dt v(z; θ) - x = 0: one Newton step from the detached
            # solution has the implicit-function gradient -(∂G/∂z)^{-1} ∂G/∂(θ, x)
            a = (eye + self.dt * jac).detach()
            g = z + self.dt * self.v(z) - x
            z = z - torch.linalg.solve(a, g.unsqueeze(-1)).squeeze(-1)
            _, jac = self.velocity_and_jacobian(z)  # again, now differentiable
        return z, -self._log_det(jac)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, t={self.t:g}, dt={self.dt:g}"


def euler_stack(flow: FlowModel, steps: int) -> DiscreteFlowModel:
    """The Euler solver with N steps as a discrete flow: N :class:`EulerStep` layers.

    Layer k (k = 0, ..., N - 1) steps from t_k to t_{k+1} on the uniform grid t_k = k / N
    (the grid of ``solve(..., solver="euler", steps=N)``, so the samples are the Euler
    solver's, bit for bit). The result is a :class:`~flowmatch.flows.discrete.DiscreteFlowModel`
    with the flow's standardization, dtype and device, sharing its velocity network; its
    ``log_prob`` is exact for the discrete map, and converges to the ODE's as N grows.

    Args:
        flow: a continuous flow with the default N(0, I) source and no logit transform.
        steps: N >= 1; the steps are invertible when N > sup_t Lip(v_t).

    Returns:
        The N-layer discrete flow.
    """
    steps = check_int(steps, "the number of Euler steps")
    if not isinstance(flow, FlowModel):
        raise FlowmatchError(f"euler_stack needs a FlowModel, got {type(flow).__name__}")
    if flow.logit is not None or not isinstance(flow.source, GaussianSource):
        raise FlowmatchError(
            "euler_stack supports a flow with the N(0, I) source and no logit transform; "
            "use the FlowModel itself for this one"
        )
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)  # the solver's grid
    t_k, dt_k = grid[:-1].tolist(), grid.diff().tolist()
    layers = [EulerStep(flow.velocity, t, dt) for t, dt in zip(t_k, dt_k, strict=True)]
    model = DiscreteFlowModel(FlowStack(layers), flow.shape, flow.data_mean, flow.data_std)
    return model.to(flow.data_mean)


def _check_shape(x: Tensor, dim: int, name: str) -> None:
    """A shape-only check (no host sync), cheap enough for every call."""
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != dim:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise FlowmatchError(f"{name} must be a tensor of shape (B, {dim}), got {shape}")
