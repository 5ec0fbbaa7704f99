"""Velocity networks v(x_t, t, c) and their registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowmatch.models.base import VelocityModel, broadcast_time
from flowmatch.models.conditioning import (
    ClassEmbedding,
    ConditionEmbedding,
    VectorEmbedding,
    make_condition_embedding,
)
from flowmatch.models.embeddings import SinusoidalTimeEmbedding
from flowmatch.models.guidance import (
    check_guidance,
    condition_dropout,
    guided_field,
    guided_velocity,
)
from flowmatch.models.mlp import ACTIVATIONS, MLPVelocity
from flowmatch.models.unet import UNetVelocity

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "ClassEmbedding",
    "ConditionEmbedding",
    "MLPVelocity",
    "ModelConfig",
    "SinusoidalTimeEmbedding",
    "UNetVelocity",
    "VectorEmbedding",
    "VelocityModel",
    "broadcast_time",
    "build_model",
    "check_guidance",
    "condition_dropout",
    "guided_field",
    "guided_velocity",
    "make_condition_embedding",
]


@dataclass
class ModelConfig:
    """Architecture of a velocity network; saved with every run."""

    name: str = "mlp"
    width: int = 256
    depth: int = 3
    activation: str = "silu"
    time_embed_dim: int = 32
    # the largest angular frequency of the time embedding; high ones let v vary fast in t,
    # which fixed-step and adaptive solvers must then resolve (see benchmarks/bench_likelihood)
    time_max_freq: float = 1000.0
    # random Fourier features of x for the mlp (0: none) and their frequencies' std
    input_features: int = 0
    input_scale: float = 1.0
    # conditioning: filled in from the data by training (0 = unconditional)
    num_classes: int = 0
    cond_dim: int = 0
    cond_embed_dim: int = 64
    # unet
    channels: int = 32
    levels: int = 2


def _mlp(cfg: ModelConfig, shape: tuple[int, ...]) -> VelocityModel:
    if len(shape) != 1:
        raise ValueError(
            f"the mlp model takes vectors (D,), got samples of shape {shape}; "
            "use --model unet for images"
        )
    return MLPVelocity(
        shape[0],
        cfg.width,
        cfg.depth,
        cfg.activation,
        cfg.time_embed_dim,
        time_max_freq=cfg.time_max_freq,
        num_classes=cfg.num_classes,
        cond_dim=cfg.cond_dim,
        cond_embed_dim=cfg.cond_embed_dim,
        input_features=cfg.input_features,
        input_scale=cfg.input_scale,
    )


def _unet(cfg: ModelConfig, shape: tuple[int, ...]) -> VelocityModel:
    return UNetVelocity(
        shape,
        channels=cfg.channels,
        levels=cfg.levels,
        time_embed_dim=cfg.time_embed_dim,
        time_max_freq=cfg.time_max_freq,
        num_classes=cfg.num_classes,
        cond_dim=cfg.cond_dim,
    )


MODELS: dict[str, Callable[[ModelConfig, tuple[int, ...]], VelocityModel]] = {
    "mlp": _mlp,
    "unet": _unet,
}


def build_model(cfg: ModelConfig, shape: tuple[int, ...]) -> VelocityModel:
    """Build the velocity network named by ``cfg.name`` for samples of the given shape."""
    from flowmatch.errors import FlowmatchError, lookup

    build = lookup(MODELS, cfg.name, "model")
    try:
        return build(cfg, shape)
    except ValueError as exc:
        raise FlowmatchError(str(exc)) from None
