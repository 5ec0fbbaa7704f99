"""A small U-Net velocity field for images, conditioned on time and (optionally) a class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowmatch.models.base import VelocityModel
from flowmatch.models.conditioning import make_condition_embedding
from flowmatch.models.embeddings import SinusoidalTimeEmbedding

__all__ = ["ResBlock", "UNetVelocity"]


def _groups(channels: int) -> int:
    """Groups of a GroupNorm: 8 where they divide the channels, else 1 (LayerNorm-like)."""
    return 8 if channels % 8 == 0 else 1


class ResBlock(nn.Module):
    """A residual block whose features are modulated by an embedding (FiLM).

    h = conv(silu(norm(x))); h = norm(h) * (1 + s) + b with (s, b) = Linear(silu(emb));
    out = conv(silu(h)) + skip(x). The second convolution starts at zero, so every block
    starts as the identity (plus a 1x1 projection when the channels change).

    Args:
        c_in: input channels.
        c_out: output channels.
        emb_dim: size of the time(+condition) embedding.

    References:
        Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer" (2018).
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.conv2(F.silu(h)) + self.skip(x)


class UNetVelocity(VelocityModel):
    """v(x, t, c) for images x (B, C, H, W) by a U-Net with one residual block per level.

    Channels double at each of ``levels`` downsamplings (stride-2 convolutions) and the
    decoder mirrors the encoder with skip connections (nearest upsampling + convolution). Time
    enters through a sinusoidal embedding and a two-layer MLP, emb(t) (B, E) with E =
    4 * channels; a class label (or condition vector) adds its embedding e(c) (B, E), null
    included, to emb(t), and every block is modulated by the sum (FiLM). The output
    convolution starts at zero, so the initial field is v = 0.

    H and W must be divisible by 2**levels (28x28 with 2 levels: 28, 14, 7; 8x8 with 2: 8, 4,
    2).

    Args:
        shape: (C, H, W) of one image.
        channels: channels at full resolution.
        levels: number of downsamplings.
        time_embed_dim: size of the sinusoidal time features.
        time_max_freq: their largest angular frequency.
        num_classes: K > 0 to condition on class labels 0..K-1.
        cond_dim: d > 0 to condition on vectors of size d.

    References:
        Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation"
        (2015); Ho et al., "Denoising Diffusion Probabilistic Models" (2020).

    Example:
        >>> import torch
        >>> v = UNetVelocity((1, 8, 8), channels=8, levels=1, num_classes=10)
        >>> v(torch.randn(2, 1, 8, 8), 0.5, torch.tensor([3, 7])).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        channels: int = 32,
        levels: int = 2,
        time_embed_dim: int = 32,
        time_max_freq: float = 1000.0,
        num_classes: int = 0,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ValueError(
                f"the unet model takes images (C, H, W), got samples of shape {tuple(shape)}; "
                "use the mlp model for vectors"
            )
        c_img, h, w = shape
        if channels < 1 or levels < 0:
            raise ValueError(f"unet needs channels >= 1 and levels >= 0, got {channels}, {levels}")
        if h % 2**levels or w % 2**levels:
            raise ValueError(
                f"unet with {levels} levels needs height and width divisible by {2**levels}, "
                f"got {h}x{w}; use fewer levels"
            )
        self.shape = tuple(shape)
        emb = 4 * channels
        self.time_embed = nn.Sequential(
            SinusoidalTimeEmbedding(time_embed_dim, time_max_freq),
            nn.Linear(time_embed_dim, emb),
            nn.SiLU(),
            nn.Linear(emb, emb),
        )
        self.condition = make_condition_embedding(num_classes, cond_dim, emb)
        widths = [channels * 2**i for i in range(levels + 1)]  # per resolution
        self.stem = nn.Conv2d(c_img, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = widths[0]
        for i, c in enumerate(widths):
            self.down.append(ResBlock(prev, c, emb))
            prev = c
            if i < levels:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(prev, prev, emb)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels + 1)):
            self.up.append(ResBlock(prev + widths[i], widths[i], emb))
            prev = widths[i]
            if i > 0:
                self.upsample.append(nn.Conv2d(prev, widths[i - 1], 3, padding=1))
                prev = widths[i - 1]
        self.out_norm = nn.GroupNorm(_groups(prev), prev)
        self.out = nn.Conv2d(prev, c_img, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def velocity(self, xt: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        emb = self.time_embed(t)  # (B, E)
        if c is not None:
            emb = emb + c
        h = self.stem(xt)  # (B, C0, H, W)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # halve H and W
        h = self.mid(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))  # (B, C, H, W)
