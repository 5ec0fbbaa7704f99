"""Per-feature standardization z = (x - mean) / std, an invertible affine map with known log-det."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_points

__all__ = ["Standardizer"]

# Relative floor on the per-feature scale: std_j >= _REL_FLOOR * max(1, |mean_j|).
_REL_FLOOR = 1e-8


@dataclass(eq=False)
class Standardizer:
    """Affine map between data units x and standardized units z = (x - mean) / std.

    Densities transform with it: log p_x(x) = log p_z(forward(x)) + :meth:`log_abs_det`.

    A constant (or numerically constant) feature has std 0; :meth:`fit` floors each std at
    ``1e-8 * max(1, |mean_j|)``, so the floor is relative to the feature's magnitude and the
    map stays invertible. Such a feature standardizes to 0 and is restored exactly by
    :meth:`inverse`; it adds ``-log(floor)`` to the log-det, as any near-degenerate feature
    would.

    Attributes:
        mean: per-feature mean, shape (D,).
        std: per-feature standard deviation (population, i.e. divided by N), shape (D,).

    Example:
        >>> x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
        >>> s = Standardizer.fit(x)
        >>> s.forward(x)
        tensor([[-1., -1.],
                [ 1.,  1.]])
        >>> torch.allclose(s.inverse(s.forward(x)), x)
        True
    """

    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            v = getattr(self, name)
            if not isinstance(v, Tensor) or v.ndim != 1 or v.numel() == 0:
                got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise FlowmatchError(f"Standardizer.{name} must be a 1-D tensor (D,), got {got}")
        if self.mean.shape != self.std.shape:
            raise FlowmatchError(
                f"Standardizer mean has {self.mean.numel()} features but std has "
                f"{self.std.numel()}; both need one entry per feature"
            )
        if not bool(torch.isfinite(self.mean).all() & torch.isfinite(self.std).all()):
            raise FlowmatchError("Standardizer mean and std must be finite; refit on clean data")
        if not bool((self.std > 0).all()):
            raise FlowmatchError("Standardizer std must be positive; refit with Standardizer.fit")

    @property
    def dim(self) -> int:
        """Number of features D."""
        return self.mean.numel()

    @classmethod
    def fit(cls, x: Tensor, *, per_feature: bool = True) -> Standardizer:
        """Estimate mean and (floored, population) std of each feature of ``x``.

        With ``per_feature=False`` one mean and one std are pooled over all entries and
        repeated for every feature. That is the choice for images: per-pixel scaling would
        blow up pixels that are nearly constant (an image's border) and distort the spatial
        statistics a convolutional network relies on, while one scale keeps the image an image.

        Args:
            x: data of shape (N, D), floating point and finite.
            per_feature: one (mean, std) per feature, or one shared by all.

        Returns:
            A standardizer in the dtype and on the device of ``x``.

        Example:
            >>> s = Standardizer.fit(torch.tensor([[0.0, 2.0], [2.0, 4.0]]), per_feature=False)
            >>> s.mean.tolist(), s.std.tolist()
            ([2.0, 2.0], [1.4142135381698608, 1.4142135381698608])
        """
        check_points(x, "x")
        if x.ndim != 2:
            raise FlowmatchError(
                f"x must have shape (N, D) to fit a Standardizer, got {tuple(x.shape)}; "
                "flatten each sample first"
            )
        x64 = x.detach().to(torch.float64)  # accumulate in double precision
        if per_feature:
            mean = x64.mean(dim=0)  # (D,)
            std = x64.std(dim=0, correction=0)  # (D,)
        else:
            mean = x64.mean().expand(x.shape[1])  # (D,), one value
            std = x64.std(correction=0).expand(x.shape[1])
        std = torch.maximum(std, _REL_FLOOR * mean.abs().clamp_min(1.0))
        return cls(mean.to(x.dtype), std.to(x.dtype))

    def _check(self, x: Tensor, name: str) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise FlowmatchError(
                f"{name} must have shape (N, {self.dim}) for this Standardizer, "
                f"got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        """Map data to standardized units, z = (x - mean) / std.

        Args:
            x: data of shape (N, D).

        Returns:
            z of shape (N, D).
        """
        self._check(x, "x")
        return (x - self.mean.to(x)) / self.std.to(x)

    __call__ = forward

    def inverse(self, z: Tensor) -> Tensor:
        """Map standardized values back to data units, x = z * std + mean.

        Args:
            z: standardized values of shape (N, D).

        Returns:
            x of shape (N, D).
        """
        self._check(z, "z")
        return z * self.std.to(z) + self.mean.to(z)

    def log_abs_det(self) -> Tensor:
        """log |det d forward / dx| = -sum_j log std_j, a scalar tensor."""
        return -torch.log(self.std).sum()

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Standardizer:
        """A copy with mean and std moved to ``device`` and/or cast to ``dtype``."""
        return Standardizer(
            self.mean.to(device=device, dtype=dtype), self.std.to(device=device, dtype=dtype)
        )

    def to_dict(self) -> dict[str, list[float]]:
        """A JSON-ready record ``{"mean": [...], "std": [...]}``."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], dtype: torch.dtype = torch.float32) -> Standardizer:
        """Rebuild a standardizer from :meth:`to_dict`'s record, checking it first.

        Args:
            d: a mapping with lists ``"mean"`` and ``"std"`` of equal length.
            dtype: dtype of the rebuilt tensors.

        Returns:
            The standardizer, on the CPU.
        """
        if not isinstance(d, dict) or not {"mean", "std"} <= d.keys():
            keys = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise FlowmatchError(
                f"standardizer record needs keys 'mean' and 'std', got {keys}; "
                "save it with Standardizer.to_dict"
            )
        values = {}
        for key in ("mean", "std"):
            v = d[key]
            ok = isinstance(v, list) and len(v) > 0
            ok = ok and all(
                isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)
                for a in v
            )
            if not ok:
                raise FlowmatchError(
                    f"standardizer record: {key!r} must be a non-empty list of finite numbers; "
                    "save it with Standardizer.to_dict"
                )
            values[key] = torch.tensor(v, dtype=dtype)
        if len(d["mean"]) != len(d["std"]):
            raise FlowmatchError(
                f"standardizer record: 'mean' has {len(d['mean'])} entries but 'std' has "
                f"{len(d['std'])}; both need one per feature"
            )
        if any(a <= 0 for a in d["std"]):
            raise FlowmatchError("standardizer record: every 'std' entry must be positive")
        return cls(values["mean"], values["std"])
