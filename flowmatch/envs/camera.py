"""A top-down camera: the point-robot scene drawn as a small colour image (3, H, W).

Each object is a disc of one colour, drawn with anti-aliased edges: a pixel whose center lies
at distance d from the disc's center is covered by c = clip((r - d) / s + 1/2, 0, 1), with s
the pixel size, so a disc's position moves its pixels' intensities continuously, below the
size of one pixel. Objects are painted in order, each over the ones before,
image <- (1 - c) image + c colour. Rendering is deterministic and vectorized over episodes.

Pixel (i, j) has its center at x = x_min + (j + 1/2) s, y = y_max - (i + 1/2) s: row 0 is the
top of the picture (largest y), column 0 its left edge (smallest x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int

__all__ = ["Camera", "Disc"]


@dataclass(frozen=True)
class Disc:
    """One round object of a scene: centers (E, 2), a radius and an RGB colour in [0, 1]."""

    center: Tensor
    radius: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Camera:
    """A square-pixel view of the box [x_min, x_min + width * s] x [y_max - height * s, y_max].

    Attributes:
        height: image rows H.
        width: image columns W.
        pixel: pixel size s in world units.
        x_min: world x of the image's left edge.
        y_max: world y of the image's top edge.

    Example:
        >>> cam = Camera()
        >>> cam.pixel_of(torch.tensor([[0.0, 0.0]])).tolist()  # the world origin
        [[16, 16]]
    """

    height: int = 32
    width: int = 32
    pixel: float = 0.0875
    x_min: float = -1.4
    y_max: float = 1.4

    def __post_init__(self) -> None:
        check_int(self.height, "camera height")
        check_int(self.width, "camera width")
        if not self.pixel > 0:
            raise FlowmatchError(f"the camera's pixel size must be > 0, got {self.pixel}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(3, H, W), the shape of one picture."""
        return (3, self.height, self.width)

    def pixel_centers(self) -> Tensor:
        """World coordinates of the pixel centers, (H, W, 2)."""
        x = self.x_min + (torch.arange(self.width) + 0.5) * self.pixel  # (W,)
        y = self.y_max - (torch.arange(self.height) + 0.5) * self.pixel  # (H,)
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        return torch.stack([xx, yy], dim=-1)

    def pixel_of(self, pos: Tensor) -> Tensor:
        """The (row, column) of the pixel holding each world point (E, 2), as (E, 2) long."""
        col = torch.floor((pos[:, 0] - self.x_min) / self.pixel)
        row = torch.floor((self.y_max - pos[:, 1]) / self.pixel)
        return torch.stack([row, col], dim=1).long()

    def render(self, discs: list[Disc]) -> Tensor:
        """Paint the discs, in order, on a black background.

        Args:
            discs: objects with centers (E, 2) each, the last drawn on top.

        Returns:
            Images (E, 3, H, W) with values in [0, 1].
        """
        if not discs:
            raise FlowmatchError("a scene needs at least one object to render")
        x = self.x_min + (torch.arange(self.width) + 0.5) * self.pixel  # (W,) column centers
        y = self.y_max - (torch.arange(self.height) + 0.5) * self.pixel  # (H,) row centers
        e = discs[0].center.shape[0]
        image = torch.zeros(e, 3, self.height, self.width)
        for disc in discs:
            dx = x[None, None, :] - disc.center[:, 0, None, None]  # (E, 1, W)
            dy = y[None, :, None] - disc.center[:, 1, None, None]  # (E, H, 1)
            d = (dx.square() + dy.square()).sqrt()  # (E, H, W)
            cover = ((disc.radius - d) / self.pixel + 0.5).clamp(0.0, 1.0)[:, None]
            color = torch.tensor(disc.color).view(1, 3, 1, 1)
            image.mul_(1 - cover).add_(cover * color)  # paint over what is there
        return image
