"""Classifier-free guidance: v_w(x, t, c) = v(x, t, ∅) + w (v(x, t, c) - v(x, t, ∅)).

One network trained with condition dropout knows both the conditional field v(x, t, c) and
the unconditional one v(x, t, ∅). Guidance extrapolates from the second towards the first:
w = 0 samples the unconditional model, w = 1 the conditional one, and w > 1 pushes samples to
where the condition is more likely than average, trading diversity for fidelity. In terms of
densities, for the ideal fields w sharpens p(x | c) towards p(x | c)^w p(x)^(1 - w), which is
only approximately what the ODE with the guided field samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.models.base import VelocityModel, broadcast_time

__all__ = ["check_guidance", "condition_dropout", "guided_field", "guided_velocity"]


def check_guidance(scale: float) -> float:
    """Check a guidance scale w: a finite real number (w = 1: no guidance)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise FlowmatchError(f"the guidance scale must be a finite number, got {scale!r}")
    return float(scale)


def condition_dropout(batch: int, p: float, generator: torch.Generator) -> Tensor:
    """Which samples of a training batch lose their condition: (B,) bool, each True w.p. p.

    The flagged samples are trained with the null condition ∅, so one network learns both
    v(x, t, c) and v(x, t, ∅). All randomness comes from ``generator`` (one U[0, 1) draw per
    sample), keeping training reproducible and resumable.

    Example:
        >>> condition_dropout(4, 0.0, torch.Generator().manual_seed(0)).tolist()
        [False, False, False, False]
    """
    if not 0.0 <= p <= 1.0:
        raise FlowmatchError(f"the condition dropout probability must be in [0, 1], got {p}")
    return torch.rand(batch, generator=generator, device=generator.device) < p


def guided_velocity(
    model: VelocityModel, xt: Tensor, t: Tensor | float, cond: Tensor, scale: float
) -> Tensor:
    """The guided field v_u + w (v_c - v_u) at x_t (B, *shape).

    Both fields come from one forward pass over the doubled batch [x_t; x_t] with the second
    half's condition dropped to the null, so the cost is one network call of size 2B. For
    w = 1 (v_c) and w = 0 (v_u) a single call of size B is made instead.

    Args:
        model: a conditional velocity network.
        xt: points (B, *shape).
        t: time, scalar or (B,).
        cond: conditions (B,) or (B, d), checked by ``model.check_condition``.
        scale: the guidance scale w.

    Returns:
        v_w (B, *shape).

    References:
        Ho & Salimans, "Classifier-Free Diffusion Guidance" (2022); Zheng et al., "Guided
        Flows for Generative Modeling and Decision Making" (2023).
    """
    if scale == 1.0:
        return model(xt, t, cond)
    if scale == 0.0:
        return model(xt, t, None)
    b = xt.shape[0]
    t2 = broadcast_time(t, b, xt).repeat(2)  # (2B,)
    drop = torch.arange(2 * b, device=xt.device) >= b  # (2B,): second half unconditional
    v = model(torch.cat([xt, xt]), t2, torch.cat([cond, cond]), drop=drop)  # (2B, *shape)
    v_c, v_u = v[:b], v[b:]
    return v_u + scale * (v_c - v_u)


def guided_field(
    model: VelocityModel, cond: Tensor, scale: float
) -> Callable[[Tensor, Tensor], Tensor]:
    """The right-hand side f(t, x) = v_w(x, t, c) for the ODE solvers."""
    if cond is None:
        raise FlowmatchError(
            "guidance needs a condition to guide towards; pass a class label or a condition vector"
        )
    scale = check_guidance(scale)
    return lambda t, x: guided_velocity(model, x, t, cond, scale)
