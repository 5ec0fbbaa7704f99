"""The interface every velocity network follows: ``model(xt, t, cond=None) -> v``."""

from __future__ import annotations

from torch import Tensor, nn

from flowmatch.errors import FlowmatchError
from flowmatch.models.conditioning import ConditionEmbedding

__all__ = ["VelocityModel", "broadcast_time"]


def broadcast_time(t: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """Turn a scalar or (B,) time into a (B,) tensor with ``like``'s dtype and device."""
    if isinstance(t, Tensor):
        t = t.to(dtype=like.dtype, device=like.device)
        return t.expand(batch) if t.ndim == 0 else t.reshape(batch)
    return like.new_full((batch,), float(t))


class VelocityModel(nn.Module):
    """A time-dependent, optionally conditional, vector field v(x_t, t, c).

    Subclasses implement :meth:`velocity` for a (B,) time tensor and the condition's
    *embedding*; :meth:`forward` accepts a scalar time too, so ODE solvers can call
    ``model(x, t)`` directly, and turns the condition into its embedding through
    ``self.condition`` (None for an unconditional model, which then has no extra weights).

    Attributes:
        shape: the shape of one sample, e.g. (D,) or (C, H, W).
        condition: the condition embedding, or None for an unconditional model.
    """

    shape: tuple[int, ...]

    def __init__(self) -> None:
        super().__init__()
        self.condition: ConditionEmbedding | None = None

    def forward(
        self,
        xt: Tensor,
        t: Tensor | float,
        cond: Tensor | None = None,
        *,
        drop: Tensor | None = None,
    ) -> Tensor:
        """v(x_t, t, c) for x_t (B, *shape) and t scalar or (B,).

        Args:
            xt: points (B, *shape).
            t: time, scalar or (B,).
            cond: conditions (B,) class labels or (B, d) vectors; None means the null
                condition ∅ (for an unconditional model, the only choice).
            drop: (B,) bool, True where c is replaced by ∅ (classifier-free guidance training).

        Returns:
            v (B, *shape).
        """
        t = broadcast_time(t, xt.shape[0], xt)
        if self.condition is None:
            if cond is not None or drop is not None:
                raise FlowmatchError(
                    "this model was built without a condition; pass cond=None (or retrain "
                    "it on labelled data)"
                )
            return self.velocity(xt, t, None)
        return self.velocity(xt, t, self.condition(cond, xt.shape[0], drop))

    def velocity(self, xt: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        """v for x_t (B, *shape), t (B,) and the condition embedding c (B, E) or None.

        Returns (B, *shape).
        """
        raise NotImplementedError

    def check_condition(self, cond, n: int) -> Tensor | None:
        """Validate user conditions for n samples at the boundary; see ``ConditionEmbedding``.

        Returns the conditions as a tensor on the model's device (None stays None).
        """
        if cond is None:
            return None
        if self.condition is None:
            raise FlowmatchError(
                "this model was trained without a condition; sample it without one"
            )
        c = self.condition.check(cond, n)
        param = next(self.parameters(), None)
        return c if param is None else c.to(param.device)
