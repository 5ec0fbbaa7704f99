"""Velocity networks v(x_t, t, c) and their registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flowmatch.models.base import VelocityModel, broadcast_time
from flowmatch.models.condition_encoders import (
    CONDITION_ENCODERS,
    DictEncoder,
    ImageEncoder,
    TextEncoder,
    TextSizes,
    make_condition_embedding,
)
from flowmatch.models.conditioning import ClassEmbedding, ConditionEmbedding, VectorEmbedding
from flowmatch.models.embeddings import SinusoidalTimeEmbedding
from flowmatch.models.guidance import (
    check_guidance,
    condition_dropout,
    guided_field,
    guided_velocity,
)
from flowmatch.models.mlp import ACTIVATIONS, MLPVelocity
from flowmatch.models.oracle import OptimalVelocity
from flowmatch.models.unet import UNetVelocity, parse_channel_mult

__all__ = [
    "ACTIVATIONS",
    "CONDITION_ENCODERS",
    "MODELS",
    "ClassEmbedding",
    "ConditionEmbedding",
    "DictEncoder",
    "ImageEncoder",
    "MLPVelocity",
    "ModelConfig",
    "OptimalVelocity",
    "SinusoidalTimeEmbedding",
    "TextEncoder",
    "TextSizes",
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
    "parse_channel_mult",
]


@dataclass
class ModelConfig:
    """Architecture of a velocity network; saved with every run."""

    name: str = field(default="mlp", metadata={"help": "velocity network"})
    width: int = field(default=256, metadata={"help": "hidden units per layer"})
    depth: int = field(default=3, metadata={"help": "hidden layers"})
    activation: str = field(default="silu", metadata={"help": "activation function"})
    time_embed_dim: int = field(default=32, metadata={"help": "size of the time embedding"})
    # the largest angular frequency of the time embedding; high ones let v vary fast in t,
    # which fixed-step and adaptive solvers must then resolve: on the 2-D sets 1000 cost
    # dopri5 ~5x the NFE of 30 at the same W2 (benchmarks/bench_defaults.py); runs saved
    # without the field keep 1000 (config.MODEL_FIELDS_ADDED_LATER)
    time_max_freq: float = field(
        default=30.0,
        metadata={
            "help": "largest angular frequency of the time embedding (lower: v smoother in t)"
        },
    )
    # random Fourier features of x for the mlp (0: none) and their frequencies' std
    input_features: int = field(
        default=0,
        metadata={
            "help": "random Fourier features of x fed to the mlp (0: none; for sharp "
            "low-dimensional densities)"
        },
    )
    input_scale: float = field(
        default=1.0,
        metadata={
            "help": "std of the Fourier features' angular frequencies, in standardized units"
        },
    )
    # conditioning: filled in from the data by training (0 = unconditional)
    num_classes: int = field(
        default=0,
        metadata={"help": "classes K of a class-conditional model (0: from the data's labels)"},
    )
    cond_dim: int = field(
        default=0, metadata={"help": "size of condition vectors (0: from the data's conditions)"}
    )
    # the spec record of an image, text or dict condition (with a text's vocabulary): written
    # by training from the data, so the run rebuilds the same encoder; no flag
    condition: dict = field(
        default_factory=dict,
        metadata={"flag": False, "help": "the condition spec of image, text or dict conditions"},
    )
    cond_embed_dim: int = field(
        default=64, metadata={"help": "size of the condition embedding of the mlp model"}
    )
    # False keeps the plain concatenation, so runs saved before the flag rebuild as they were
    film: bool = field(
        default=False,
        metadata={
            "help": "let a text condition modulate the image encoder's feature maps (FiLM), "
            "for dict conditions of an image and a text (mlp model)"
        },
    )
    # the text encoder of prompts and instructions; runs saved before these were fields used
    # the defaults (config.MODEL_FIELDS_ADDED_LATER)
    text_width: int = field(
        default=64,
        metadata={"help": "model size of the text encoder's transformer (prompts, instructions)"},
    )
    text_layers: int = field(
        default=2, metadata={"help": "transformer layers of the text encoder (prompts)"}
    )
    text_heads: int = field(
        default=4,
        metadata={"help": "attention heads of the text encoder; they must divide --text-width"},
    )
    text_ff_mult: int = field(
        default=2,
        metadata={"help": "feed-forward width of the text encoder, in multiples of --text-width"},
    )
    # unet
    channels: int = field(
        default=32, metadata={"help": "channels at full resolution (--model unet)"}
    )
    levels: int = field(default=2, metadata={"help": "downsampling levels (--model unet)"})
    # "" keeps the original widths (doubling per level), so old runs rebuild the same network
    channel_mult: str = field(
        default="",
        metadata={
            "help": "channel multipliers per resolution, full first, levels + 1 of them, "
            "e.g. 1,2,2 (--model unet; empty: double at each level)"
        },
    )
    attention: bool = field(
        default=False,
        metadata={"help": "self-attention at the lowest resolution (--model unet)"},
    )

    def text_sizes(self) -> TextSizes:
        """The sizes of the text encoder, checked (one line for impossible ones)."""
        return TextSizes(self.text_width, self.text_layers, self.text_heads, self.text_ff_mult)

    def is_conditional(self) -> bool:
        """Whether the network takes a condition (classes, vectors or a spec'd kind)."""
        return bool(self.num_classes or self.cond_dim or self.condition)


def _mlp(cfg: ModelConfig, shape: tuple[int, ...]) -> VelocityModel:
    if len(shape) != 1:
        raise ValueError(
            f"the mlp model takes vectors (D,), got samples of shape {shape}; "
            "use the unet model for images"
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
        condition=cfg.condition,
        film=cfg.film,
        text=cfg.text_sizes(),
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
        channel_mult=parse_channel_mult(cfg.channel_mult, cfg.levels),
        attention=cfg.attention,
        condition=cfg.condition,
        text=cfg.text_sizes(),
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
