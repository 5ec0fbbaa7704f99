"""A multilayer perceptron velocity field for vector data."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowmatch.data.conditions import ConditionSpec
from flowmatch.models.base import VelocityModel
from flowmatch.models.condition_encoders import TextSizes, make_condition_embedding
from flowmatch.models.embeddings import FourierFeatures, SinusoidalTimeEmbedding

__all__ = ["ACTIVATIONS", "MLPVelocity"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


class MLPVelocity(VelocityModel):
    """v(x, t, c) = MLP([x, emb(t), e(c)]) for x of shape (B, D).

    Smooth activations (silu, softplus, tanh) give a smooth field, which adaptive solvers and
    exact divergences prefer; relu is offered for comparison.

    A conditional model concatenates the condition embedding e(c) (class table or vector MLP,
    with a learned null, see :mod:`~flowmatch.models.conditioning`) to the input. The time
    embedding here is a fixed sinusoidal map with no weights, so concatenation is the plain way
    to join the two; for the first layer it is the same as adding learned projections of each.
    An unconditional model has exactly the weights it had before conditioning existed.

    Args:
        dim: the data dimension D.
        width: hidden units per layer.
        depth: number of hidden layers.
        activation: a key of ``ACTIVATIONS``.
        time_embed_dim: size of the sinusoidal time embedding.
        time_max_freq: its largest angular frequency.
        num_classes: K > 0 to condition on class labels 0..K-1.
        cond_dim: d > 0 to condition on vectors of size d.
        cond_embed_dim: size of the condition embedding e(c).
        condition: the spec (or its record) of any other condition (images, texts, dicts),
            encoded by :func:`~flowmatch.models.condition_encoders.make_condition_embedding`.
        input_features: m > 0 to feed the network random Fourier features of x as well
            (:class:`~flowmatch.models.embeddings.FourierFeatures`); 0 feeds x alone.
        input_scale: the standard deviation of their frequencies.
        film: let a dict condition's text modulate its image encoder (see
            :class:`~flowmatch.models.condition_encoders.DictEncoder`).
        text: the sizes of a text condition's encoder (None: the defaults).

    Example:
        >>> import torch
        >>> v = MLPVelocity(dim=2, width=16, depth=2)
        >>> v(torch.zeros(5, 2), 0.5).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        dim: int,
        width: int = 256,
        depth: int = 3,
        activation: str = "silu",
        time_embed_dim: int = 32,
        time_max_freq: float = 30.0,
        num_classes: int = 0,
        cond_dim: int = 0,
        cond_embed_dim: int = 64,
        input_features: int = 0,
        input_scale: float = 1.0,
        condition: ConditionSpec | dict | None = None,
        film: bool = False,
        text: TextSizes | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation '{activation}'; choose one of {list(ACTIVATIONS)}"
            )
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        self.shape = (dim,)
        self.time_embed = SinusoidalTimeEmbedding(time_embed_dim, time_max_freq)
        layers: list[nn.Module] = []
        self.condition = make_condition_embedding(
            num_classes, cond_dim, cond_embed_dim, condition or None, film=film, text=text
        )
        self.input_embed = (
            FourierFeatures(dim, input_features, input_scale) if input_features else None
        )
        x_size = dim if self.input_embed is None else self.input_embed.out_dim
        fan_in = x_size + time_embed_dim + (0 if self.condition is None else cond_embed_dim)
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
            fan_in = width
        layers.append(nn.Linear(fan_in, dim))
        self.net = nn.Sequential(*layers)

    def velocity(self, xt: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        x = xt if self.input_embed is None else self.input_embed(xt)
        parts = [x, self.time_embed(t)] if c is None else [x, self.time_embed(t), c]
        return self.net(torch.cat(parts, dim=1))  # (B, D)
