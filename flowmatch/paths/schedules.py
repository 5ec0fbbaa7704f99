"""Schedules (alpha_t, sigma_t) of affine probability paths x_t = alpha_t x1 + sigma_t x0."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CosineSchedule", "LinearSchedule", "Schedule", "ScheduleValues"]


@dataclass(frozen=True)
class ScheduleValues:
    """The coefficients of an affine path and their time derivatives, each shaped like t."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor


class Schedule:
    """Coefficients with alpha_0 = 0, sigma_0 = 1 (noise) and alpha_1 = 1, sigma_1 = 0 (data)."""

    def __call__(self, t: Tensor) -> ScheduleValues:
        raise NotImplementedError


class LinearSchedule(Schedule):
    """alpha_t = t, sigma_t = 1 - t: the straight line of the tutorial.

    References:
        Flow Matching for Generative Modeling (Lipman et al., 2023); Flow Straight and Fast
        (Liu et al., 2023).
    """

    def __call__(self, t: Tensor) -> ScheduleValues:
        one = torch.ones_like(t)
        return ScheduleValues(alpha=t, sigma=1 - t, d_alpha=one, d_sigma=-one)


class CosineSchedule(Schedule):
    """alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2): a variance-preserving path.

    alpha_t^2 + sigma_t^2 = 1, so for standardized data the marginal variance stays near 1.

    References:
        Improved Denoising Diffusion Probabilistic Models (Nichol & Dhariwal, 2021);
        Flow Matching for Generative Modeling (Lipman et al., 2023).
    """

    def __call__(self, t: Tensor) -> ScheduleValues:
        angle = 0.5 * math.pi * t
        half_pi = 0.5 * math.pi
        return ScheduleValues(
            alpha=torch.sin(angle),
            sigma=torch.cos(angle),
            d_alpha=half_pi * torch.cos(angle),
            d_sigma=-half_pi * torch.sin(angle),
        )
