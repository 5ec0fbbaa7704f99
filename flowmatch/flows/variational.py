"""Fitting a flow q to an unnormalized density p ∝ exp(-U) by reverse KL, and judging the fit.

For any normalizing constant Z = ∫ exp(-U),

    KL(q || p) = E_q[log q(x) + U(x)] + log Z >= 0,

so the free energy F(q) = E_q[log q + U] is an upper bound on -log Z that needs no Z to
estimate: it is the training objective (with x = f(z), z ~ N(0, I), reparametrized). Its gap
to -log Z is the KL. On a 2-D box B the constant Z_B = ∫_B exp(-U) is cheap by quadrature,
which turns the bound into a KL estimate; a second, independent KL estimate integrates
q log(q / p) on the same grid, using the flow's exact log q at any point.

References:
    Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015);
    Kong, "A Note on Importance Sampling using Standardized Weights" (1992) for the ESS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from flowmatch.flows.base import Flow
from flowmatch.flows.discrete import DiscreteFlowModel

__all__ = [
    "EnergyFitReport",
    "box_grid",
    "effective_sample_size",
    "evaluate_energy_fit",
    "grid_log_normalizer",
    "reverse_kl_loss",
]

Box = tuple[float, float, float, float]


def reverse_kl_loss(
    q: DiscreteFlowModel,
    energy: Callable[[Tensor], Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The Monte Carlo free energy F = mean_i [log q(x_i) + U(x_i)], x_i ~ q; a scalar.

    Unbiased for E_q[log q + U] = KL(q || p) - log Z, with reparametrized gradients.

    Args:
        q: a discrete flow, whose ``rsample_and_log_prob`` draws are reparametrized.
        energy: U, (n, D) -> (n,).
        n: the number of draws.
        generator: their randomness.
    """
    r = q.rsample_and_log_prob(n, generator)
    return (r.log_prob + energy(r.x)).mean()


def effective_sample_size(log_w: Tensor) -> float:
    """Kish's ESS of importance weights as a fraction of the draws, in [0, 1]:
    (Σ w)^2 / (n Σ w^2), from log-weights (n,) (which may hold -inf for zero weights)."""
    n = log_w.shape[0]
    if not bool(torch.isfinite(log_w).any()):
        return 0.0
    log_ess = 2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)
    return float(log_ess.exp()) / n


def box_grid(box: Box, resolution: int) -> tuple[Tensor, Tensor, float]:
    """The midpoints of a resolution x resolution grid of cells on the box, in float64.

    Returns:
        The axes ((W,), (H,)) stacked as a (2, resolution) tensor, the (resolution^2, 2)
        points (z2-major, so ``values.reshape(H, W)`` is an image), and the cell area.
    """
    x0, x1, y0, y1 = box
    hx, hy = (x1 - x0) / resolution, (y1 - y0) / resolution
    xs = x0 + hx * (torch.arange(resolution, dtype=torch.float64) + 0.5)
    ys = y0 + hy * (torch.arange(resolution, dtype=torch.float64) + 0.5)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W)
    return torch.stack([xs, ys]), torch.stack([xx, yy], dim=-1).reshape(-1, 2), hx * hy


def grid_log_normalizer(
    energy: Callable[[Tensor], Tensor], box: Box, resolution: int = 400
) -> float:
    """log Z_B = log ∫_B exp(-U) by the midpoint rule on a resolution^2 grid (float64).

    The midpoint rule is second order: its error falls as 1 / resolution^2 for smooth U.
    """
    _, points, cell = box_grid(box, resolution)
    with torch.no_grad():
        u = _batched(energy, points)
    return float(torch.logsumexp(-u, 0)) + math.log(cell)


@dataclass
class EnergyFitReport:
    """How well a flow q fits p_B(x) = exp(-U(x)) 1_B(x) / Z_B on a box B.

    q's mass outside B is reported and left out: the KLs are those of q_B, q conditioned on
    B, for which KL(q_B || p_B) = E_{q_B}[log q + U] - log q(B) + log Z_B. When q puts all its
    mass in B this is the plain KL(q || p_B) and ``bound`` is the training objective.

    Attributes:
        energy: the energy's name.
        box: B.
        bound: F_B = E_{q_B}[log q + U] - log q(B), the variational upper bound on -log Z_B
            (Monte Carlo).
        bound_se: its standard error (the spread of log q + U over the draws, and the
            binomial noise of the estimate of q(B)).
        log_z: log Z_B by midpoint quadrature on a ``grid`` x ``grid`` grid.
        kl: the KL from the bound, F_B + log Z_B (Monte Carlo, >= 0 up to noise).
        kl_grid: KL(q_B || p_B) by quadrature of q log(q / p) on the same grid, with q from the
            flow's exact log-density; it agrees with ``kl`` when the inverse is right.
        mass_outside: 1 - q(B), the fraction of draws of q outside the box.
        ess: effective sample size (fraction of n) of the weights w = exp(-U(x) - log q(x))
            1_B(x), x ~ q: 1 for a perfect fit, small when q misses mass.
        log_z_is: the importance-sampling estimate log mean w of log Z_B.
        n: the number of draws of q.
        grid: the grid resolution.
    """

    energy: str
    box: Box
    bound: float
    bound_se: float
    log_z: float
    kl: float
    kl_grid: float
    mass_outside: float
    ess: float
    log_z_is: float
    n: int
    grid: int

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as short lines for a terminal."""
        b = ", ".join(f"{v:g}" for v in self.box)
        return [
            f"energy {self.energy} on the box [{b}] (z1 min, z1 max, z2 min, z2 max)",
            f"  bound E_q[log q + U] = {self.bound:.4f} ± {self.bound_se:.4f}  (>= -log Z)",
            f"  log Z (grid {self.grid}^2)   = {self.log_z:.4f}   "
            f"(importance sampling: {self.log_z_is:.4f})",
            f"  KL(q || p) = bound + log Z = {self.kl:.4f} ± {self.bound_se:.4f}   "
            f"(grid quadrature: {self.kl_grid:.4f})",
            f"  ESS = {100 * self.ess:.1f}% of {self.n} draws;  q mass outside the box "
            f"{100 * self.mass_outside:.2f}%",
        ]


def evaluate_energy_fit(
    q: Flow,
    energy: Callable[[Tensor], Tensor],
    box: Box,
    *,
    name: str = "U",
    n: int = 20_000,
    grid: int = 400,
    generator: torch.Generator | None = None,
) -> EnergyFitReport:
    """Score a flow q against the target p_B ∝ exp(-U) 1_B on a 2-D box; see the report.

    Args:
        q: a flow over 2-D points (its default options give its densities).
        energy: U, (N, 2) -> (N,).
        box: B = (z1 min, z1 max, z2 min, z2 max).
        name: the energy's name for the report.
        n: draws of q for the Monte Carlo estimates.
        grid: the quadrature grid's resolution per axis.
        generator: the draws' randomness.

    Returns:
        The :class:`EnergyFitReport`.
    """
    log_z = grid_log_normalizer(energy, box, grid)
    with torch.no_grad():
        r = q.sample_and_log_prob(n, generator=generator)
        x, log_q = r.x.double(), r.log_prob.double()
        lo, hi = x.new_tensor(box[0::2]), x.new_tensor(box[1::2])
        inside = ((x >= lo) & (x <= hi)).all(dim=1)  # (n,)
        u = _batched(energy, x)
        log_w = torch.where(inside, -u - log_q, -math.inf)
        m = int(inside.sum())
        mass_in = m / n
        if m > 1:
            f = (log_q + u)[inside]
            bound = float(f.mean()) - math.log(mass_in)
            # delta method: the mean over the m draws inside, plus the binomial noise of
            # log q(B) = log(m / n), independent of it
            bound_se = math.sqrt(float(f.var()) / m + (1.0 - mass_in) / (n * mass_in))
        else:
            bound, bound_se = math.inf, math.inf
        log_z_is = float(torch.logsumexp(log_w, 0)) - math.log(n) if m else -math.inf

        _, points, cell = box_grid(box, grid)
        dtype = next(q.parameters()).dtype
        log_q_grid = _batched(lambda p: q.log_prob(p.to(dtype)), points).double()
        log_p_grid = -_batched(energy, points) - log_z
        log_mass = torch.logsumexp(log_q_grid, 0) + math.log(cell)  # log q(B) on the grid
        log_q_b = log_q_grid - log_mass
        kl_grid = float((log_q_b.exp() * (log_q_b - log_p_grid)).sum() * cell)
    return EnergyFitReport(
        energy=name,
        box=tuple(float(v) for v in box),  # type: ignore[arg-type]
        bound=bound,
        bound_se=bound_se,
        log_z=log_z,
        kl=bound + log_z,
        kl_grid=kl_grid,
        mass_outside=1.0 - mass_in,
        ess=effective_sample_size(log_w),
        log_z_is=log_z_is,
        n=n,
        grid=grid,
    )


def _batched(fn: Callable[[Tensor], Tensor], points: Tensor, size: int = 65_536) -> Tensor:
    """fn over the rows of ``points`` in chunks, concatenated (keeps memory flat)."""
    return torch.cat([fn(points[i : i + size]) for i in range(0, points.shape[0], size)])
