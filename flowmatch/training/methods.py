"""Training methods: what model a run builds and which loss it minimizes."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from flowmatch.flows.continuous import FlowModel
from flowmatch.models import build_model, condition_dropout
from flowmatch.paths import get_path
from flowmatch.training.cnf import ContinuousNormalizingFlow
from flowmatch.training.config import TrainConfig
from flowmatch.training.pairs import draw_batch
from flowmatch.training.planar import PlanarMaximumLikelihood
from flowmatch.training.schedules import sample_time

__all__ = ["METHODS", "Distillation", "FlowMatching", "Method", "flow_matching_loss"]


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
        """A scalar loss on a batch of standardized data x1 (B, *shape).

        A method whose ``supports_condition`` attribute is true also takes ``cond=``, the
        conditions of the batch ((B,) labels or (B, d) vectors), on conditional data.
        """
        ...


def flow_matching_loss(
    model: FlowModel,
    xt: Tensor,
    t: Tensor,
    ut: Tensor,
    cond: Tensor | None = None,
    drop: Tensor | None = None,
) -> Tensor:
    """L_FM = E || v(x_t, t, c) - u_t ||^2, averaged over batch and features.

    ``drop`` (B,) bool replaces c by the null condition where set (classifier-free guidance).
    """
    return (model.velocity(xt, t, cond, drop=drop) - ut).square().mean()


class FlowMatching:
    """Regress v(x_t, t) on the path's target u_t with t ~ uniform (or logit-normal).

    x0 comes from the run's source (``--source``, N(0, I) by default) and is paired with the
    data batch by ``--coupling`` (independent, minibatch OT, ...), or the pair is a row of a
    fixed pair table (``--pairs``, reflow); see :func:`~flowmatch.training.pairs.draw_batch`.

    On conditional data (labels, observations) the loss is the conditional one of the
    tutorial's Section 5, E || v(x_t, t, c) - u_t ||^2 with (x1, c) drawn together, and each
    sample's c is replaced by the learned null with probability ``--cond-drop`` so that the
    same network also learns v(x_t, t, ∅) for classifier-free guidance.

    References:
        Flow Matching for Generative Modeling (Lipman et al., 2023); Ho & Salimans,
        "Classifier-Free Diffusion Guidance" (2022); Tong et al., "Improving
        and Generalizing Flow-Based Generative Models with Minibatch Optimal Transport" (2024);
        Liu et al., "Flow Straight and Fast: Learning to Generate and Transfer Data with
        Rectified Flow" (2023).
    """

    def build(
        self, cfg: TrainConfig, shape: tuple[int, ...], mean: Tensor, std: Tensor
    ) -> FlowModel:
        from flowmatch.data.sources import build_source

        get_path(cfg.path)  # fail early on an unknown path
        source = build_source(cfg.source, shape, standardize=cfg.standardize)
        return FlowModel(build_model(cfg.model, shape), mean, std, source)

    supports_condition = True

    def loss(
        self,
        model: FlowModel,
        x1: Tensor,
        generator: torch.Generator,
        cfg: TrainConfig,
        cond: Tensor | None = None,
        x0: Tensor | None = None,
    ) -> Tensor:
        """The loss on data ``x1``; ``x0`` is its coupled source batch when the loop drew the
        pairs itself (:func:`~flowmatch.training.pairs.draw_chunk`), else it is drawn here."""
        if x0 is None:
            x0, x1 = draw_batch(model, x1, generator, cfg, cond)
        b = x1.shape[0]
        t = sample_time(
            cfg.time_sampling,
            b,
            generator,
            cfg.logit_normal_mean,
            cfg.logit_normal_std,
            cfg.time_uniform_share,
        ).to(x1.device)
        drop = None
        if cond is not None:  # drawn last, so unconditional runs see the same random stream
            drop = condition_dropout(b, cfg.cond_drop, generator).to(x1.device)
        s = get_path(cfg.path).sample(x0, x1, t)
        return flow_matching_loss(model, s.xt, s.t, s.ut, cond, drop)


class Distillation(FlowMatching):
    """Train a student whose k-step Euler solve lands where the teacher's ODE does.

    On teacher pairs (x0, x1 = ODE(x0)) from ``--pairs``, with h = 1 / k and
    z_0 = x0, z_{i+1} = z_i + h v(z_i, i h), the loss is || z_k - x1 ||^2 averaged over batch and
    features, back-propagated through all k steps (``--distill-steps``). For k = 1 it is
    || v(x0, 0) - (x1 - x0) ||^2. The student is then sampled with
    ``flowmatch sample --solver euler --steps k``.

    References:
        Liu et al., "Flow Straight and Fast: Learning to Generate and Transfer Data with
        Rectified Flow" (2023), Section 2.3 (distillation); Luhman & Luhman, "Knowledge
        Distillation in Iterative Generative Models for Improved Sampling Speed" (2021).
    """

    supports_condition = False

    def loss(
        self, model: FlowModel, x1: Tensor, generator: torch.Generator, cfg: TrainConfig
    ) -> Tensor:
        x0, x1 = draw_batch(model, x1, generator, cfg)
        k = cfg.distill_steps
        z = x0
        for i in range(k):
            z = z + model.velocity(z, i / k) / k  # one Euler step of size 1 / k
        return (z - x1).square().mean()


METHODS: dict[str, Method] = {
    "fm": FlowMatching(),
    "cnf": ContinuousNormalizingFlow(),
    "planar": PlanarMaximumLikelihood(),
    "distill": Distillation(),
}
