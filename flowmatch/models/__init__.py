"""Velocity networks v(x_t, t, c) and their registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowmatch.models.base import VelocityModel, broadcast_time
from flowmatch.models.embeddings import SinusoidalTimeEmbedding
from flowmatch.models.mlp import ACTIVATIONS, MLPVelocity

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "MLPVelocity",
    "ModelConfig",
    "SinusoidalTimeEmbedding",
    "VelocityModel",
    "broadcast_time",
    "build_model",
]


@dataclass
class ModelConfig:
    """Architecture of a velocity network; saved with every run."""

    name: str = "mlp"
    width: int = 256
    depth: int = 3
    activation: str = "silu"
    time_embed_dim: int = 32


def _mlp(cfg: ModelConfig, shape: tuple[int, ...]) -> VelocityModel:
    if len(shape) != 1:
        raise ValueError(f"the mlp model takes vectors (D,), got samples of shape {shape}")
    return MLPVelocity(shape[0], cfg.width, cfg.depth, cfg.activation, cfg.time_embed_dim)


MODELS: dict[str, Callable[[ModelConfig, tuple[int, ...]], VelocityModel]] = {"mlp": _mlp}


def build_model(cfg: ModelConfig, shape: tuple[int, ...]) -> VelocityModel:
    """Build the velocity network named by ``cfg.name`` for samples of the given shape."""
    from flowmatch.errors import FlowmatchError

    if cfg.name not in MODELS:
        raise FlowmatchError(f"unknown model '{cfg.name}'; choose one of: {', '.join(MODELS)}")
    try:
        return MODELS[cfg.name](cfg, shape)
    except ValueError as exc:
        raise FlowmatchError(str(exc)) from None
