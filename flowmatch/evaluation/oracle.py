"""A trained velocity against the closed-form optimum v*: error in t, loss gap, memorization.

Three measurements, all against :class:`~flowmatch.models.OptimalVelocity` v* of the training
points (the field a network would reach with unlimited capacity and optimization on that set):

* **error in t**: E|v_theta - v*|^2 / E|v*|^2 over x_t = (1 - t) x0 + t x1 with x1 held out,
  x0 ~ N(0, I) and t uniform in each bin, in the network's standardized units. Near t = 1 the
  empirical v* of held-out points heads for the nearest *training* point, which a network that
  generalizes does not do, so the last bins measure memorization as much as error.
* **the objective**: on one fixed batch (x0, x1 from the training points, t), the FM loss
  E|v - (x1 - x0)|^2 of the network and of v*. By L(v) = L(v*) + E|v - v*|^2 the first exceeds
  the second in expectation by E|v_theta - v*|^2, what training can still gain; v*'s loss
  E tr Cov[x1 - x0 | x_t] is the part no field removes (the tutorial's Section 3).
* **memorization**: sampling v* reproduces training points; the median distance of samples to
  their nearest training point, against that of held-out points (a model that generalizes sits
  near the second; v* near 0).

References:
    Lipman et al., "Flow Matching for Generative Modeling" (2023); Kamb & Ganguli, "An
    analytic theory of creativity in convolutional diffusion models" (2024).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int, check_points
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import OptimalVelocity, VelocityModel

__all__ = [
    "FMLossGap",
    "Memorization",
    "OracleBin",
    "OracleReport",
    "error_by_time",
    "fm_loss_gap",
    "memorization",
    "nearest_distance",
    "oracle_flow",
    "oracle_report",
]


@dataclass
class OracleBin:
    """E|v_theta - v*|^2 / E|v*|^2 over the queries with t in [t_lo, t_hi)."""

    t_lo: float
    t_hi: float
    n: int
    relative_error: float
    mse: float  # E|v_theta - v*|^2, summed over features
    oracle_norm: float  # E|v*|^2


@dataclass
class FMLossGap:
    """FM losses on one fixed batch, averaged over batch and features like training's."""

    network: float  # L(v_theta) on the batch
    oracle: float  # L(v*) on the batch
    gap: float  # network - oracle
    expected_gap: float  # E|v_theta - v*|^2 / D on the batch: the gap's expectation
    floor: float  # E tr Cov[x1 - x0 | x_t] / D on the batch: L(v*)'s expectation
    n: int


@dataclass
class Memorization:
    """Median distance to the nearest training point (data units)."""

    oracle_samples: float
    network_samples: float
    held_out: float
    n: int


@dataclass
class OracleReport:
    bins: list[OracleBin]
    loss: FMLossGap
    memorization: Memorization | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def oracle_flow(flow: FlowModel, points: Tensor, labels: Tensor | None = None) -> FlowModel:
    """The :class:`~flowmatch.flows.continuous.FlowModel` of the empirical v* of ``points``,
    in ``flow``'s units: same standardization, source and logit map, v* of the standardized
    points (with ``labels``, the conditional v*, with the classes of ``flow``'s network).

    Example:
        >>> import torch
        >>> from flowmatch.models import MLPVelocity
        >>> net = FlowModel(MLPVelocity(2, width=8, depth=1), torch.ones(2), 2 * torch.ones(2))
        >>> star = oracle_flow(net, torch.tensor([[3.0, -1.0]]))
        >>> x = star.sample(2, seed=0, solver="euler", steps=10)  # every sample is the point
        >>> torch.allclose(x, torch.tensor([3.0, -1.0]), atol=1e-5)
        True
    """
    if not isinstance(flow, FlowModel):
        raise FlowmatchError(
            f"the oracle compares continuous flows (FlowModel), got {type(flow).__name__}"
        )
    points = check_points(points, "training points", dim=flow.dim).to(flow.device)
    z = flow.standardize(points.reshape(-1, *flow.shape).double())  # (N, *shape)
    k = None
    if labels is not None and flow.velocity.condition is not None:
        k = getattr(flow.velocity.condition, "num_classes", None)
    oracle = OptimalVelocity.empirical(z, labels, num_classes=k)
    return FlowModel(oracle, flow.data_mean, flow.data_std, flow.source, flow.logit)


def _path_batch(z1: Tensor, t: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """x0 ~ N(0, I) and x_t = (1 - t) x0 + t x1, for standardized x1 (B, D) and t (B,)."""
    z0 = torch.randn(z1.shape, generator=generator, dtype=z1.dtype).to(z1.device)
    return z0, (1 - t[:, None]) * z0 + t[:, None] * z1


@torch.no_grad()
def error_by_time(
    velocity: VelocityModel,
    oracle: OptimalVelocity,
    z1: Tensor,
    *,
    cond: Tensor | None = None,
    bins: int = 10,
    seed: int = 0,
) -> list[OracleBin]:
    """E|v_theta - v*|^2 / E|v*|^2 per t-bin over x_t built from held-out z1 (N, D).

    Every point appears once per bin, with t ~ U(bin) and its own x0 ~ N(0, I).

    Args:
        velocity: the network, in standardized units.
        oracle: v* in the same units.
        z1: held-out points, standardized, (N, D).
        cond: their conditions (N,), or None.
        bins: equal bins of [0, 1].
        seed: seed of t and x0.

    Returns:
        One :class:`OracleBin` per bin, in order of t.
    """
    check_int(bins, "bins")
    g = torch.Generator().manual_seed(seed)
    z1 = z1.reshape(z1.shape[0], -1).double()  # (N, D)
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        t = lo + (hi - lo) * torch.rand(z1.shape[0], generator=g, dtype=z1.dtype).to(z1.device)
        _, xt = _path_batch(z1, t, g)
        v_star = oracle(xt, t, cond).double()
        v = velocity(xt.to(_dtype(velocity)), t.to(_dtype(velocity)), cond).double()
        mse = (v - v_star).square().sum(1).mean().item()
        norm = v_star.square().sum(1).mean().item()
        out.append(OracleBin(lo, hi, z1.shape[0], mse / norm, mse, norm))
    return out


@torch.no_grad()
def fm_loss_gap(
    velocity: VelocityModel,
    oracle: OptimalVelocity,
    z1: Tensor,
    *,
    cond: Tensor | None = None,
    seed: int = 0,
) -> FMLossGap:
    """FM losses of the network and of v* on one fixed batch built from training z1 (B, D).

    The batch is x0 ~ N(0, I), t ~ U(0, 1), x_t = (1 - t) x0 + t x1, the target x1 - x0, and
    the loss the mean over batch and features of |v(x_t, t, c) - (x1 - x0)|^2, as in training
    with the independent coupling and uniform times.
    """
    g = torch.Generator().manual_seed(seed)
    z1 = z1.reshape(z1.shape[0], -1).double()  # (B, D)
    t = torch.rand(z1.shape[0], generator=g, dtype=z1.dtype).to(z1.device)
    z0, xt = _path_batch(z1, t, g)
    target = z1 - z0
    v_star = oracle(xt, t, cond).double()
    v = velocity(xt.to(_dtype(velocity)), t.to(_dtype(velocity)), cond).double()
    network = (v - target).square().mean().item()
    best = (v_star - target).square().mean().item()
    d = z1.shape[1]
    return FMLossGap(
        network=network,
        oracle=best,
        gap=network - best,
        expected_gap=(v - v_star).square().sum(1).mean().item() / d,
        floor=oracle.conditional_variance(xt, t, cond).mean().item() / d,
        n=z1.shape[0],
    )


def nearest_distance(x: Tensor, points: Tensor, chunk: int = 1024) -> Tensor:
    """Euclidean distance (N,) of each row of x (N, D) to its nearest row of points (M, D)."""
    x, points = x.reshape(x.shape[0], -1).double(), points.reshape(points.shape[0], -1).double()
    return torch.cat(
        [torch.cdist(x[i : i + chunk], points).amin(1) for i in range(0, x.shape[0], chunk)]
    )


def memorization(
    oracle_samples: Tensor, network_samples: Tensor, train: Tensor, held_out: Tensor
) -> Memorization:
    """Median nearest-training-point distances of both sample sets and of held-out points.

    Example:
        >>> import torch
        >>> train = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
        >>> m = memorization(train, train + torch.tensor([0.0, 0.5]), train, train + 1.0)
        >>> m.oracle_samples, m.network_samples, m.held_out
        (0.0, 0.5, 1.0)
    """
    return Memorization(
        oracle_samples=nearest_distance(oracle_samples, train).median().item(),
        network_samples=nearest_distance(network_samples, train).median().item(),
        held_out=nearest_distance(held_out, train).median().item(),
        n=oracle_samples.shape[0],
    )


def oracle_report(
    flow: FlowModel,
    train: Tensor,
    held_out: Tensor,
    *,
    train_cond: Tensor | None = None,
    held_out_cond: Tensor | None = None,
    bins: int = 10,
    samples: int = 500,
    seed: int = 0,
    solver: str = "midpoint",
    steps: int = 100,
) -> OracleReport:
    """The three measurements of this module for a flow and its training points (data units).

    Args:
        flow: the trained flow.
        train: the points v* is built on, (N, *shape) in data units.
        held_out: points never trained on, (M, *shape).
        train_cond: the training points' class labels (N,), for a conditional network.
        held_out_cond: the held-out points' labels (M,).
        bins: t-bins of the error table.
        samples: samples of each flow for the memorization distances (0: skip them).
        seed: seed of every draw.
        solver: ODE solver of both flows' samples.
        steps: its steps.

    Returns:
        An :class:`OracleReport`.
    """
    star = oracle_flow(flow, train, train_cond)
    if held_out_cond is not None and flow.velocity.condition is None:
        held_out_cond = None
    held_out = check_points(held_out, "held-out points", dim=flow.dim)
    z_held = flow.standardize(held_out.reshape(-1, *flow.shape).to(flow.device).double())
    table = error_by_time(
        flow.velocity, star.velocity, z_held, cond=held_out_cond, bins=bins, seed=seed
    )
    g = torch.Generator().manual_seed(seed + 1)
    pick = torch.randint(train.shape[0], (min(4096, 4 * train.shape[0]),), generator=g)
    cond = None if train_cond is None or flow.velocity.condition is None else train_cond[pick]
    z_train = star.velocity.points[pick.to(star.velocity.points.device)]
    loss = fm_loss_gap(
        flow.velocity, star.velocity, z_train.reshape(-1, *flow.shape), cond=cond, seed=seed
    )
    mem = None
    if samples:
        options = {"seed": seed, "solver": solver, "steps": steps}
        mem = memorization(
            star.sample(samples, **options),
            flow.sample(samples, **options),
            train,
            held_out,
        )
    return OracleReport(table, loss, mem)


def _dtype(model: VelocityModel) -> torch.dtype:
    """The dtype a network takes: its weights', float64 for a field without weights."""
    param = next(model.parameters(), None)
    return torch.float64 if param is None else param.dtype
