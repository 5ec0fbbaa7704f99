"""Training methods: what model a run builds and which loss it minimizes."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from flowmatch.flow_model import FlowModel
from flowmatch.models import build_model
from flowmatch.paths import get_path
from flowmatch.training.config import TrainConfig
from flowmatch.training.schedules import sample_time

__all__ = ["METHODS", "FlowMatching", "Method", "flow_matching_loss"]


class Method(Protocol):
    """A way to train a generative model; the registry key is the ``--method`` choice."""

    def build(
        self, cfg: TrainConfig, shape: tuple[int, ...], mean: Tensor, std: Tensor
    ) -> nn.Module:
        """The model for samples of ``shape``, given the data statistics."""
        ...

    def loss(
        self, model: nn.Module, x1: Tensor, generator: torch.Generator, cfg: TrainConfig
    ) -> Tensor:
        """A scalar loss on a batch of standardized data x1 (B, *shape)."""
        ...


def flow_matching_loss(model: FlowModel, xt: Tensor, t: Tensor, ut: Tensor) -> Tensor:
    """L_FM = E || v(x_t, t) - u_t ||^2, averaged over batch and features."""
    return (model.velocity(xt, t) - ut).square().mean()


class FlowMatching:
    """Regress v(x_t, t) on the path's target u_t with t ~ uniform (or logit-normal).

    References:
        Flow Matching for Generative Modeling (Lipman et al., 2023).
    """

    def build(
        self, cfg: TrainConfig, shape: tuple[int, ...], mean: Tensor, std: Tensor
    ) -> FlowModel:
        get_path(cfg.path)  # fail early on an unknown path
        return FlowModel(build_model(cfg.model, shape), mean, std)

    def loss(
        self, model: FlowModel, x1: Tensor, generator: torch.Generator, cfg: TrainConfig
    ) -> Tensor:
        b = x1.shape[0]
        x0 = torch.randn(x1.shape, generator=generator).to(x1.device)
        t = sample_time(
            cfg.time_sampling, b, generator, cfg.logit_normal_mean, cfg.logit_normal_std
        ).to(x1.device)
        s = get_path(cfg.path).sample(x0, x1, t)
        return flow_matching_loss(model, s.xt, s.t, s.ut)


METHODS: dict[str, Method] = {"fm": FlowMatching()}
