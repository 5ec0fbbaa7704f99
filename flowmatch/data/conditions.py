"""What the condition c of a data set is: a class label or a continuous vector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int, lookup

__all__ = ["CONDITION_KINDS", "ConditionSpec"]

CONDITION_KINDS = ("class", "vector")


@dataclass(frozen=True)
class ConditionSpec:
    """The kind and size of a data set's conditions; saved with every conditional run.

    Attributes:
        kind: ``"class"`` (integer labels 0..size-1, shape (N,)) or ``"vector"`` (float
            vectors, shape (N, size)).
        size: the number of classes K, or the vector size d.
        names: optional class names, one per class.

    Example:
        >>> spec = ConditionSpec("class", 3, ("a", "b", "c"))
        >>> ConditionSpec.from_dict(spec.to_dict()) == spec
        True
    """

    kind: str
    size: int
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        lookup(CONDITION_KINDS, self.kind, "condition kind")
        check_int(self.size, "a condition's size")
        if self.names and (self.kind != "class" or len(self.names) != self.size):
            raise FlowmatchError(
                f"names are given per class: expected {self.size} for a class condition, "
                f"got {len(self.names)} for kind {self.kind!r}"
            )

    @classmethod
    def infer(cls, cond: Tensor) -> ConditionSpec:
        """Integer labels (N,) give classes 0..max; float (N, d) (or (N,)) give vectors."""
        if not cond.dtype.is_floating_point and cond.dtype != torch.bool:
            if cond.ndim != 1:
                raise FlowmatchError(f"class labels must have shape (N,), got {tuple(cond.shape)}")
            if bool((cond < 0).any()):
                raise FlowmatchError("class labels must be >= 0; renumber the classes 0..K-1")
            return cls("class", int(cond.max()) + 1)
        if cond.ndim not in (1, 2):
            raise FlowmatchError(
                f"condition vectors must have shape (N, d), got {tuple(cond.shape)}"
            )
        return cls("vector", 1 if cond.ndim == 1 else int(cond.shape[1]))

    def check(self, cond: Tensor, n: int, name: str = "cond") -> Tensor:
        """Check the conditions of n samples of a data set; returns them as (n,) long or (n, d)."""
        if not isinstance(cond, Tensor) or cond.shape[:1] != (n,):
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise FlowmatchError(f"{name} must have one row per sample ({n}), got {got}")
        if self.kind == "class":
            if cond.dtype.is_floating_point or cond.ndim != 1:
                raise FlowmatchError(
                    f"{name}: class labels must be integers of shape (N,), got {cond.dtype} "
                    f"of shape {tuple(cond.shape)}"
                )
            if bool(((cond < 0) | (cond >= self.size)).any()):
                raise FlowmatchError(f"{name}: class labels must lie in 0..{self.size - 1}")
            return cond.long()
        c = cond.reshape(n, -1).float()
        if c.shape[1] != self.size:
            raise FlowmatchError(
                f"{name}: condition vectors have {c.shape[1]} entries, expected {self.size}"
            )
        if not bool(torch.isfinite(c).all()):
            raise FlowmatchError(f"{name}: condition vectors contain NaN or Inf")
        return c

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "names": list(self.names)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConditionSpec:
        if not isinstance(d, dict) or not {"kind", "size"} <= d.keys():
            raise FlowmatchError("a condition record needs 'kind' and 'size'; the run is damaged")
        return cls(d["kind"], d["size"], tuple(d.get("names", ())))
