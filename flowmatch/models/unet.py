"""A small U-Net velocity field for images, conditioned on time and (optionally) a class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowmatch.data.conditions import ConditionSpec
from flowmatch.models.base import VelocityModel
from flowmatch.models.condition_encoders import TextSizes, make_condition_embedding
from flowmatch.models.embeddings import SinusoidalTimeEmbedding

__all__ = ["ResBlock", "SelfAttention", "UNetVelocity", "parse_channel_mult"]


def _groups(channels: int) -> int:
    """Groups of a GroupNorm: 8 where they divide the channels, else 1 (LayerNorm-like)."""
    return 8 if channels % 8 == 0 else 1


def parse_channel_mult(text: str, levels: int) -> tuple[int, ...] | None:
    """Read ``--channel-mult`` ("1,2,2": widths channels * m per resolution, full first).

    Returns None for "" (channels double at each level, the original network). Raises
    ValueError with one line for anything but ``levels + 1`` positive integers.
    """
    if not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() and int(p) >= 1 for p in parts):
        raise ValueError(
            f"--channel-mult must be comma-separated integers >= 1 such as 1,2,2, got {text!r}"
        )
    if len(parts) != levels + 1:
        raise ValueError(
            f"--channel-mult needs one multiplier per resolution, levels + 1 = {levels + 1}, "
            f"got {len(parts)} in {text!r}"
        )
    return tuple(int(p) for p in parts)


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


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual.

    h = norm(x); q, k, v = 1x1 conv(h) split into heads of (up to) 32 channels;
    out = x + proj(softmax(q k^T / sqrt(d)) v). The projection starts at zero, so the block
    starts as the identity.

    Args:
        channels: channels of the feature map.

    References:
        Vaswani et al., "Attention Is All You Need" (2017); Ho et al., "Denoising Diffusion
        Probabilistic Models" (2020).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = channels // 32 if channels % 32 == 0 else 1
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # (B, heads, HW, C / heads) each
        a = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C / heads)
        return x + self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


class UNetVelocity(VelocityModel):
    """v(x, t, c) for images x (B, C, H, W) by a U-Net with one residual block per level.

    Channels double at each of ``levels`` downsamplings (stride-2 convolutions), or follow
    ``channel_mult`` (channels * m at each resolution, full resolution first), and the
    decoder mirrors the encoder with skip connections (nearest upsampling + convolution). Time
    enters through a sinusoidal embedding and a two-layer MLP, emb(t) (B, E) with E =
    4 * channels; a class label (or condition vector) adds its embedding e(c) (B, E), null
    included, to emb(t), and every block is modulated by the sum (FiLM). The output
    convolution starts at zero, so the initial field is v = 0. With ``attention``, a
    self-attention block follows the middle block at the lowest resolution (for 32-64 px
    images, whose global structure the convolutions alone see poorly).

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
        channel_mult: ``levels + 1`` multipliers of ``channels``, one per resolution
            (None: 1, 2, 4, ...).
        attention: add self-attention at the lowest resolution.
        condition: the spec (or its record) of any other condition (images, texts, dicts),
            encoded by :func:`~flowmatch.models.condition_encoders.make_condition_embedding`.
        text: the sizes of a text condition's encoder (None: the defaults).

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
        time_max_freq: float = 30.0,
        num_classes: int = 0,
        cond_dim: int = 0,
        channel_mult: tuple[int, ...] | None = None,
        attention: bool = False,
        condition: ConditionSpec | dict | None = None,
        text: TextSizes | None = None,
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
        if channel_mult is None:
            channel_mult = tuple(2**i for i in range(levels + 1))
        if len(channel_mult) != levels + 1 or min(channel_mult) < 1:
            raise ValueError(
                f"unet with {levels} levels needs {levels + 1} channel multipliers >= 1, "
                f"got {tuple(channel_mult)}"
            )
        self.shape = tuple(shape)
        emb = 4 * channels
        self.time_embed = nn.Sequential(
            SinusoidalTimeEmbedding(time_embed_dim, time_max_freq),
            nn.Linear(time_embed_dim, emb),
            nn.SiLU(),
            nn.Linear(emb, emb),
        )
        self.condition = make_condition_embedding(
            num_classes, cond_dim, emb, condition or None, text=text
        )
        widths = [channels * m for m in channel_mult]  # per resolution
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
        # built only when asked, so the default network's parameters and init are unchanged
        self.mid_attention = SelfAttention(prev) if attention else None
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
        if self.mid_attention is not None:
            h = self.mid_attention(h)  # (B, C_L, H / 2**L, W / 2**L)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))  # (B, C, H, W)
