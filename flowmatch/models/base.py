"""The interface every velocity network follows: ``model(xt, t, cond=None) -> v``."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["VelocityModel", "broadcast_time"]


def broadcast_time(t: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """Turn a scalar or (B,) time into a (B,) tensor with ``like``'s dtype and device."""
    if isinstance(t, Tensor):
        t = t.to(dtype=like.dtype, device=like.device)
        return t.expand(batch) if t.ndim == 0 else t.reshape(batch)
    return like.new_full((batch,), float(t))


class VelocityModel(nn.Module):
    """A time-dependent (and optionally conditional) vector field v(x_t, t, c).

    Subclasses implement :meth:`velocity` for a (B,) time tensor; :meth:`forward` accepts a
    scalar time too, so ODE solvers can call ``model(x, t)`` directly.

    Attributes:
        shape: the shape of one sample, e.g. (D,) or (C, H, W).
    """

    shape: tuple[int, ...]

    def forward(self, xt: Tensor, t: Tensor | float, cond: Tensor | None = None) -> Tensor:
        return self.velocity(xt, broadcast_time(t, xt.shape[0], xt), cond)

    def velocity(self, xt: Tensor, t: Tensor, cond: Tensor | None) -> Tensor:
        """v(x_t, t, c) for x_t (B, *shape), t (B,), c (B, ...) or None; returns (B, *shape)."""
        raise NotImplementedError
