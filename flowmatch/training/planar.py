"""Maximum likelihood for discrete flows: the ``planar`` training method."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.flows import DiscreteFlowModel, planar_stack
from flowmatch.training.batches import Batch
from flowmatch.training.config import TrainConfig

__all__ = ["PlanarMaximumLikelihood"]

# options of the path-based methods that a planar flow cannot honour: (flag, field, default)
_CONTINUOUS_ONLY = (
    ("--coupling", "coupling", "independent"),
    ("--source", "source", "gaussian"),
    ("--pairs", "pairs", ""),
    ("--init-from", "init_from", ""),
)


class PlanarMaximumLikelihood:
    """Fit a stack of K planar layers (``--layers``) to data by maximum likelihood.

    The loss is the negative log-likelihood in nats per sample of the standardized data,
    -mean_i log p(x_i) with log p(x) = log N(f^{-1}(x)) - Σ_k log|det ∂f_k/∂x_{k-1}|. The
    stack points from noise to data (x = f(z)), so each step inverts every layer (a scalar
    Newton solve per layer) and differentiates through the inverse by the implicit function
    theorem; sampling is then a plain forward pass. No randomness is used: the data draws
    alone move the generator.

    Args:
        cfg: the run's configuration (``layers``, ``planar_activation``, ``planar_affine``).

    References:
        Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015).
    """

    supports_condition = False
    coupled = False

    def __init__(self, cfg: TrainConfig | None = None) -> None:
        self.cfg = cfg or TrainConfig(method="planar")

    def build(self, shape: tuple[int, ...], mean: Tensor, std: Tensor) -> DiscreteFlowModel:
        cfg = self.cfg
        ignored = [
            flag
            for flag, field, default in _CONTINUOUS_ONLY
            if getattr(cfg, field, default) != default
        ]
        if ignored:
            raise FlowmatchError(
                f"--method planar transforms its own N(0, I) base by likelihood and has no use "
                f"for {', '.join(ignored)}; drop {'it' if len(ignored) == 1 else 'them'}"
            )
        stack = planar_stack(
            math.prod(shape), cfg.layers, cfg.planar_activation, affine=cfg.planar_affine
        )
        return DiscreteFlowModel(stack, shape, mean, std)

    def loss(self, model: DiscreteFlowModel, batch: Batch, generator: torch.Generator) -> Tensor:
        return -model.log_prob_standardized(batch.x1).mean()
