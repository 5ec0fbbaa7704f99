"""Log-densities of a continuous flow in data units, by the instantaneous change of variables."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from flowmatch.errors import check_int, check_points
from flowmatch.flows.base import make_generator
from flowmatch.likelihood import (
    LOG_PROB_EXACT_MAX_DIM,
    LogProbResult,
    log_prob,
    make_divergence,
    sample_log_prob,
)

if TYPE_CHECKING:
    from flowmatch.flows.continuous import FlowModel

__all__ = ["log_prob_with_stats", "sample_and_log_prob"]


def sample_and_log_prob(
    flow: FlowModel,
    n: int,
    *,
    seed: int | None,
    generator: torch.Generator | None,
    cond: Tensor | int | None,
    **options: Any,
) -> LogProbResult:
    """n samples of ``flow`` and their log-densities from one solve of (x, int div v dt).

    The work of :meth:`FlowModel.sample_and_log_prob
    <flowmatch.flows.continuous.FlowModel.sample_and_log_prob>`; ``options`` are that
    method's solver and divergence options. The noise is drawn first, then any probes, both
    from the same generator.
    """
    n = check_int(n, "the number of samples")
    flow.source.check_density()
    cond = flow.check_condition(cond, n)
    generator = make_generator(seed, generator)
    z0 = flow.noise(n, generator).reshape(n, -1).to(flow.data_mean.dtype)  # (n, D)
    r = _solve(sample_log_prob, flow, z0, cond, generator, **options)
    x = flow.unstandardize(r.x.reshape(n, *flow.shape))
    r.x, r.log_prob = x, r.log_prob + flow.log_abs_det_to_z(x)
    return r


def log_prob_with_stats(
    flow: FlowModel,
    x: Tensor,
    *,
    seed: int | None,
    generator: torch.Generator | None,
    cond: Tensor | None,
    batch_size: int | None,
    **options: Any,
) -> LogProbResult:
    """log p(x) of data x under ``flow``, integrating (x, int div v dt) from t = 1 back to 0.

    The work of :meth:`FlowModel.log_prob_with_stats
    <flowmatch.flows.continuous.FlowModel.log_prob_with_stats>`; ``options`` are that
    method's solver and divergence options.
    """
    flow.source.check_density()
    x = check_points(x, "data", dim=flow.dim)
    x = x.reshape(x.shape[0], -1).to(flow.device, flow.data_mean.dtype)  # (N, D)
    n = x.shape[0]
    cond = flow.check_condition(cond, n)
    if batch_size is not None:
        check_int(batch_size, "batch_size")
    generator = make_generator(seed, generator)
    if flow.logit is not None:
        flow.logit.check_inside(x)
    z1 = flow.standardize(x.reshape(n, *flow.shape)).reshape(n, -1)  # (N, D)
    size = n if batch_size is None else batch_size
    parts: list[LogProbResult] = []
    for start in range(0, n, size):
        chunk = z1[start : start + size]  # (B, D)
        c = None if cond is None else cond[start : start + size]
        parts.append(_solve(log_prob, flow, chunk, c, generator, **options))
    errors = [p.stderr for p in parts]
    stderr = None if any(e is None for e in errors) else torch.cat(errors)
    return LogProbResult(
        log_prob=torch.cat([p.log_prob for p in parts]) + flow.log_abs_det_to_z(x),
        stderr=stderr,
        x=torch.cat([p.x for p in parts]).reshape(n, *flow.shape),
        nfe=sum(p.nfe for p in parts),
    )


def _solve(
    solve: Callable[..., LogProbResult],
    flow: FlowModel,
    z: Tensor,
    cond: Tensor | None,
    generator: torch.Generator | None,
    *,
    divergence: str,
    probes: int,
    probe: str,
    **solve_options: Any,
) -> LogProbResult:
    """Solve (z, int div v dt) with ``solve`` on the flow's field and source, in standardized units.

    ``solve`` is :func:`~flowmatch.likelihood.log_prob` for data z = z_1 or
    :func:`~flowmatch.likelihood.sample_log_prob` for noise z = z_0, a (B, D) batch. Any
    Hutchinson probes are drawn from ``generator``; ``"auto"`` is exact up to D =
    ``LOG_PROB_EXACT_MAX_DIM``.
    """
    div = make_divergence(
        divergence,
        z,
        probes=probes,
        distribution=probe,
        generator=generator,
        exact_max_dim=LOG_PROB_EXACT_MAX_DIM,
    )
    return solve(flow.flat_field(cond), z, div, log_p0=flow.source.log_prob, **solve_options)
