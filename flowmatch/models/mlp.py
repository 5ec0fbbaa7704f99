"""A multilayer perceptron velocity field for vector data."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowmatch.models.base import VelocityModel
from flowmatch.models.embeddings import SinusoidalTimeEmbedding

__all__ = ["ACTIVATIONS", "MLPVelocity"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


class MLPVelocity(VelocityModel):
    """v(x, t) = MLP([x, emb(t)]) for x of shape (B, D).

    Smooth activations (silu, softplus, tanh) give a smooth field, which adaptive solvers and
    exact divergences prefer; relu is offered for comparison.

    Args:
        dim: the data dimension D.
        width: hidden units per layer.
        depth: number of hidden layers.
        activation: a key of ``ACTIVATIONS``.
        time_embed_dim: size of the sinusoidal time embedding.

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
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation '{activation}'; choose one of {list(ACTIVATIONS)}"
            )
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        self.shape = (dim,)
        self.time_embed = SinusoidalTimeEmbedding(time_embed_dim)
        layers: list[nn.Module] = []
        fan_in = dim + time_embed_dim
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
            fan_in = width
        layers.append(nn.Linear(fan_in, dim))
        self.net = nn.Sequential(*layers)

    def velocity(self, xt: Tensor, t: Tensor, cond: Tensor | None) -> Tensor:
        if cond is not None:
            raise ValueError("this model was built without a condition; pass cond=None")
        return self.net(torch.cat([xt, self.time_embed(t)], dim=1))  # (B, D)
