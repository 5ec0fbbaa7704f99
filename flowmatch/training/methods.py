"""Training methods: what model a run builds and which loss it minimizes on a batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from flowmatch.data.conditions import ConditionSpec
from flowmatch.errors import FlowmatchError
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import build_model, condition_dropout
from flowmatch.paths import get_path
from flowmatch.training.batches import Batch
from flowmatch.training.cnf import ContinuousNormalizingFlow
from flowmatch.training.config import TrainConfig
from flowmatch.training.planar import PlanarMaximumLikelihood
from flowmatch.training.schedules import sample_time

__all__ = ["METHODS", "Distillation", "FlowMatching", "Method", "flow_matching_loss"]


class Method(Protocol):
    """A way to train a generative model, made from the run's config: ``METHODS[name](cfg)``.

    Attributes:
        supports_condition: it trains conditional models on ``batch.cond``.
        coupled: its loss needs ``batch.x0``, source points coupled with the data (the batch
            source then draws them); the likelihood methods need the data alone.
    """

    supports_condition: bool
    coupled: bool

    def build(self, shape: tuple[int, ...], mean: Tensor, std: Tensor) -> nn.Module:
        """The model for samples of ``shape``, given the data statistics."""
        ...

    def loss(self, model: nn.Module, batch: Batch, generator: torch.Generator) -> Tensor:
        """A scalar loss on ``batch`` (standardized units).

        Randomness of the loss's own (times, dropped conditions, Hutchinson probes, grid
        jitter) is drawn from ``generator``, the batch source's, after the batch's draws.
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

    The tutorial's squared norm sums over the D features; we average instead (its value / D), so
    the loss scale and a good learning rate do not depend on the data's dimension.

    ``drop`` (B,) bool replaces c by the null condition where set (classifier-free guidance).
    """
    return (model.velocity(xt, t, cond, drop=drop) - ut).square().mean()


class FlowMatching:
    """Regress v(x_t, t) on the path's target u_t with t ~ uniform (or logit-normal).

    x0 comes from the run's source (``--source``, N(0, I) by default) and is paired with the
    data batch by ``--coupling`` (independent, minibatch OT, ...), or the pair is a row of a
    fixed pair table (``--pairs``, reflow); see :mod:`~flowmatch.training.batches`.

    On conditional data (labels, observations) the loss is the conditional one of the
    tutorial's Section 5, E || v(x_t, t, c) - u_t ||^2 with (x1, c) drawn together, and each
    sample's c is replaced by the learned null with probability ``--cond-drop`` so that the
    same network also learns v(x_t, t, ∅) for classifier-free guidance. With
    ``--text-word-dropout`` p, each known word of a text condition (a prompt, an instruction)
    is replaced by ``<unk>`` with probability p, so the text encoder learns to read prompts
    past words it does not know; sampling always sees the prompt as given.

    Args:
        cfg: the run's configuration (path, time sampling, condition dropout, model).

    References:
        Flow Matching for Generative Modeling (Lipman et al., 2023); Ho & Salimans,
        "Classifier-Free Diffusion Guidance" (2022); Tong et al., "Improving
        and Generalizing Flow-Based Generative Models with Minibatch Optimal Transport" (2024);
        Liu et al., "Flow Straight and Fast: Learning to Generate and Transfer Data with
        Rectified Flow" (2023); Bowman et al., "Generating Sentences from a Continuous Space"
        (2016) (word dropout).
    """

    supports_condition = True
    coupled = True

    def __init__(self, cfg: TrainConfig | None = None) -> None:
        self.cfg = cfg or TrainConfig()
        self.path = get_path(self.cfg.path, self.cfg.sigma_min)  # fails early on a bad path

    def build(self, shape: tuple[int, ...], mean: Tensor, std: Tensor) -> FlowModel:
        from flowmatch.data.sources import build_source

        cfg = self.cfg
        try:
            source = build_source(cfg.source, shape, standardize=cfg.standardize)
        except FlowmatchError as exc:  # name the config field (and flag) that was given
            raise FlowmatchError(f"--source: {exc}") from None
        return FlowModel(build_model(cfg.model, shape), mean, std, source)

    def loss(self, model: FlowModel, batch: Batch, generator: torch.Generator) -> Tensor:
        cfg, x1 = self.cfg, batch.x1
        b = x1.shape[0]
        t = sample_time(
            cfg.time_sampling,
            b,
            generator,
            cfg.logit_normal_mean,
            cfg.logit_normal_std,
            cfg.time_uniform_share,
        ).to(x1.device)
        drop, cond = None, batch.cond
        if cond is not None:  # drawn last, so unconditional runs see the same stream
            drop = condition_dropout(b, cfg.cond_drop, generator).to(x1.device)
            if cfg.text_word_dropout > 0:  # after, so runs without it see the same stream
                spec = ConditionSpec.from_dict(cfg.model.condition)
                cond = spec.drop_words(cond, cfg.text_word_dropout, generator)
        s = self.path.sample(batch.x0, x1, t)
        return flow_matching_loss(model, s.xt, s.t, s.ut, cond, drop)


class Distillation(FlowMatching):
    """Train a student whose k-step Euler solve lands where the teacher's ODE does.

    On teacher pairs (x0, x1 = ODE(x0)) from ``--pairs``, with h = 1 / k and
    z_0 = x0, z_{i+1} = z_i + h v(z_i, i h), the loss is || z_k - x1 ||^2 averaged over batch and
    features, back-propagated through all k steps (``--distill-steps``). For k = 1 it is
    || v(x0, 0) - (x1 - x0) ||^2. The student is then sampled with
    ``flowmatch sample --solver euler --steps k``. No randomness of its own.

    References:
        Liu et al., "Flow Straight and Fast: Learning to Generate and Transfer Data with
        Rectified Flow" (2023), Section 2.3 (distillation); Luhman & Luhman, "Knowledge
        Distillation in Iterative Generative Models for Improved Sampling Speed" (2021).
    """

    supports_condition = False

    def loss(self, model: FlowModel, batch: Batch, generator: torch.Generator) -> Tensor:
        k = self.cfg.distill_steps
        z = batch.x0
        for i in range(k):
            z = z + model.velocity(z, i / k) / k  # one Euler step of size 1 / k
        return (z - batch.x1).square().mean()


METHODS: dict[str, Callable[[TrainConfig], Method]] = {
    "fm": FlowMatching,
    "cnf": ContinuousNormalizingFlow,
    "planar": PlanarMaximumLikelihood,
    "distill": Distillation,
}
"""Method name -> the method made from a run's config; the names are the ``--method`` choices."""
