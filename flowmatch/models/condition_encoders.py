"""One registry of condition encoders: classes, vectors, images, texts and dicts of named parts.

:func:`make_condition_embedding` builds the encoder of a model's condition from its
:class:`~flowmatch.data.conditions.ConditionSpec` (the run's config records the spec, so a run
rebuilds the same encoder). Every encoder maps a batch of stored conditions to e(c) (B, dim)
and holds a learned null e(∅) for classifier-free guidance; see
:mod:`~flowmatch.models.conditioning` for the interface.

How to use it, end to end:

- **Data.** A data set sets ``dataset.condition`` to a spec and returns its conditions, one
  row per sample, in the stored form (``spec.encode(values, n)`` makes it, e.g. from a list
  of n captions, or from ``{"image": images (n, 3, 32, 32), "instruction": [n strings]}``
  for ``ConditionSpec.combine({"image": ConditionSpec.image((3, 32, 32)), "instruction":
  ConditionSpec.text(vocab, 12)})``). :class:`~flowmatch.data.ArrayDataset` takes them as
  ``cond=`` with ``condition=spec``.
- **Model.** Training writes the spec into ``ModelConfig.condition`` (kinds image, text and
  dict; classes and vectors keep ``num_classes`` / ``cond_dim``) and the velocity network
  builds its encoder here, at its time-embedding size; text and image encoders train jointly
  with the velocity field.
- **Sampling.** ``flow.sample(n, cond=value, guidance=w)`` with value a prompt, an image, a
  dict of parts...: ``flow.check_condition`` encodes and checks it once (a missing part, an
  image of the wrong size: one-line :class:`~flowmatch.errors.FlowmatchError`; unknown words
  are fine and become ``<unk>``), and guidance drops the whole condition to e(∅).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flowmatch.data.conditions import ConditionSpec
from flowmatch.errors import FlowmatchError, check_int, lookup
from flowmatch.models.conditioning import ClassEmbedding, ConditionEmbedding, VectorEmbedding

__all__ = [
    "CONDITION_ENCODERS",
    "DictEncoder",
    "ImageEncoder",
    "TextEncoder",
    "TextSizes",
    "make_condition_embedding",
]


class SpecEncoder(ConditionEmbedding):
    """An encoder whose conditions a :class:`ConditionSpec` describes, checked by it."""

    spec: ConditionSpec

    def _check_shape(self, cond: Tensor, batch: int) -> None:
        want = (batch, *self.spec.shape) if self.spec.kind == "image" else (batch, self.spec.size)
        tokens = self.spec.kind == "text"  # integer ids; images and packed dicts are floats
        if tuple(cond.shape) != want or cond.dtype.is_floating_point == tokens:
            raise FlowmatchError(
                f"{self.spec.kind} conditions must be {'integer' if tokens else 'float'} "
                f"tensors of shape {want}, got {cond.dtype} of shape {tuple(cond.shape)}"
            )

    def check(self, cond, n: int) -> Tensor:
        """The user's condition(s) for n samples, encoded and checked by the spec."""
        return self.spec.encode(cond, n)


class ImageEncoder(SpecEncoder):
    """e(c) for images c (B, C, H, W) by a small CNN: two stride-2 convolutions, a linear map.

    The feature map is pooled to at most 8x8 and flattened, not averaged away, so where things
    are in the image (a goal, an obstacle) reaches e(c).

    Args:
        spec: an ``image`` condition spec.
        dim: embedding size.
        channels: channels of the first convolution (the second has twice as many).

    Example:
        >>> enc = ImageEncoder(ConditionSpec.image((3, 32, 32)), dim=16)
        >>> enc(torch.rand(2, 3, 32, 32), 2).shape
        torch.Size([2, 16])
    """

    kind = "image"

    def __init__(self, spec: ConditionSpec, dim: int, channels: int = 16) -> None:
        super().__init__()
        self.spec, self.dim = spec, int(dim)
        c, h, w = spec.shape
        pooled = (min(8, (h + 3) // 4), min(8, (w + 3) // 4))
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(pooled),
            nn.Flatten(),
            nn.Linear(2 * channels * pooled[0] * pooled[1], dim),
        )
        self.null_embedding = nn.Parameter(torch.zeros(dim))

    def null(self) -> Tensor:
        return self.null_embedding

    @property
    def film_channels(self) -> list[int]:
        """Output channels of each convolution, the sizes a FiLM modulation must give."""
        return [m.out_channels for m in self.net if isinstance(m, nn.Conv2d)]

    def embed(self, cond: Tensor, film: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """e(c) (B, dim); ``film`` holds a (scale, shift) pair (B, C) per convolution.

        With ``film``, each convolution's feature map h (B, C, H', W') becomes
        h * (1 + scale) + shift before its activation.
        """
        h = cond.to(self.null_embedding.dtype)
        pairs = iter(film or [])
        for layer in self.net:
            h = layer(h)
            if film is not None and isinstance(layer, nn.Conv2d):
                scale, shift = next(pairs)  # (B, C) each
                h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return h  # (B, dim)


@dataclass(frozen=True)
class TextSizes:
    """The sizes of a :class:`TextEncoder`'s transformer (``ModelConfig.text_*``).

    Attributes:
        width: the model size W of the tokens' states.
        layers: transformer layers (>= 1).
        heads: attention heads; they split W, so they must divide it.
        ff_mult: the feed-forward layers' width, in multiples of W.

    Example:
        >>> TextSizes(width=32, heads=4).heads
        4
        >>> TextSizes(width=32, heads=3)
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: the text encoder's 3 heads must divide its width 32 ...
    """

    width: int = 64
    layers: int = 2
    heads: int = 4
    ff_mult: int = 2

    def __post_init__(self) -> None:
        for name in ("width", "layers", "heads", "ff_mult"):
            check_int(getattr(self, name), f"the text encoder's {name}")
        if self.width % self.heads:
            raise FlowmatchError(
                f"the text encoder's {self.heads} heads must divide its width {self.width} "
                "(each head attends in width / heads dimensions)"
            )


class TextEncoder(SpecEncoder):
    """e(c) for token ids c (B, L) by a small transformer; e(c) is its summary token's output.

    A learned summary token is put before the words (so an empty prompt has an embedding
    too), words and positions are embedded, padding is masked out of attention, and the
    summary token's final state is mapped to ``dim``.

    Args:
        spec: a ``text`` condition spec (its vocabulary size and length L).
        dim: embedding size.
        sizes: the transformer's width, layers, heads and feed-forward width.

    References:
        Vaswani et al., "Attention Is All You Need" (2017); Devlin et al., "BERT: Pre-training
        of Deep Bidirectional Transformers for Language Understanding" (2019), the summary token.

    Example:
        >>> from flowmatch.data.text import Vocabulary
        >>> spec = ConditionSpec.text(Vocabulary.build(["a thick seven"]), length=6)
        >>> enc = TextEncoder(spec, dim=16)
        >>> enc(enc.check("a thick one", 3), 3).shape
        torch.Size([3, 16])
    """

    kind = "text"

    def __init__(self, spec: ConditionSpec, dim: int, sizes: TextSizes | None = None) -> None:
        super().__init__()
        self.spec, self.dim = spec, int(dim)
        self.sizes = sizes = sizes or TextSizes()
        width, heads = sizes.width, sizes.heads
        self.tokens = nn.Embedding(len(spec.vocab), width, padding_idx=0)
        self.positions = nn.Parameter(torch.randn(spec.size + 1, width) * 0.02)
        self.summary = nn.Parameter(torch.randn(width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, sizes.ff_mult * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, sizes.layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))
        self.null_embedding = nn.Parameter(torch.zeros(dim))

    def null(self) -> Tensor:
        return self.null_embedding

    def embed(self, cond: Tensor) -> Tensor:
        b = cond.shape[0]
        h = torch.cat([self.summary.expand(b, 1, -1), self.tokens(cond)], dim=1)  # (B, L+1, W)
        h = h + self.positions
        pad = torch.cat([cond.new_zeros(b, 1, dtype=torch.bool), cond == 0], dim=1)  # (B, L+1)
        h = self.transformer(h, src_key_padding_mask=pad)  # (B, L+1, W)
        return self.out(h[:, 0])  # (B, dim)


class DictEncoder(SpecEncoder):
    """e(c) for a dict of named parts: each part by its own encoder, combined by an MLP.

    e(c) = MLP([e_1(c_1), ..., e_k(c_k)]) over the concatenated part embeddings, and the null
    is the same map of the parts' nulls, e(∅) = MLP([e_1(∅), ..., e_k(∅)]): guidance drops
    the whole condition at once.

    With ``film=True`` and exactly one image part and one text part, the text's embedding
    also modulates the image encoder's feature maps (FiLM: a per-channel scale and shift
    after each convolution, from a linear map of e_text), so the words can select what the
    CNN looks for in the picture (which of two goals, say) before the picture is summed up.
    The modulation starts at zero (the identity), so it begins as the plain encoder.

    Args:
        spec: a ``dict`` condition spec.
        dim: embedding size (of each part's embedding and of e(c)).
        film: modulate the image part's convolutions by the text part's embedding.
        text: the sizes of a text part's encoder (default: :class:`TextSizes`'s).

    References:
        Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer" (2018).

    Example:
        >>> spec = ConditionSpec.combine(
        ...     {"image": ConditionSpec.image((3, 8, 8)), "goal": ConditionSpec("class", 2)}
        ... )
        >>> enc = DictEncoder(spec, dim=16)
        >>> c = enc.check({"image": torch.rand(3, 8, 8), "goal": 1}, 5)
        >>> enc(c, 5).shape
        torch.Size([5, 16])
    """

    kind = "dict"

    def __init__(
        self, spec: ConditionSpec, dim: int, film: bool = False, text: TextSizes | None = None
    ) -> None:
        super().__init__()
        self.spec, self.dim = spec, int(dim)
        self.parts = nn.ModuleDict(
            {
                name: make_condition_embedding(0, 0, dim, part, text=text)
                for name, part in spec.parts
            }
        )
        k = len(spec.parts)
        self.combine = nn.Sequential(nn.Linear(k * dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.film: nn.ModuleList | None = None
        if film:
            kinds = [part.kind for _, part in spec.parts]
            if sorted(kinds) != ["image", "text"]:
                raise FlowmatchError(
                    f"film needs a dict condition of one image part and one text part, "
                    f"got parts of kinds {kinds}"
                )
            names = dict((part.kind, name) for name, part in spec.parts)
            self.image_part, self.text_part = names["image"], names["text"]
            channels = self.parts[self.image_part].film_channels
            self.film = nn.ModuleList(nn.Linear(dim, 2 * c) for c in channels)
            for layer in self.film:  # start as the identity: scale 0, shift 0
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def null(self) -> Tensor:
        nulls = torch.cat([enc.null() for enc in self.parts.values()])  # (k * dim,)
        return self.combine(nulls[None])[0]

    def part_embeddings(self, cond: Tensor) -> dict[str, Tensor]:
        """Each part's embedding e_i(c_i) (B, dim), by name, before they are combined."""
        parts = self.spec.unpack(cond)
        if self.film is None:
            return {name: enc.embed(parts[name]) for name, enc in self.parts.items()}
        e_text = self.parts[self.text_part].embed(parts[self.text_part])  # (B, dim)
        film = [layer(e_text).chunk(2, dim=1) for layer in self.film]  # (B, C) pairs
        image = self.parts[self.image_part].embed(parts[self.image_part], film)
        return {self.text_part: e_text, self.image_part: image}

    def embed(self, cond: Tensor) -> Tensor:
        e = self.part_embeddings(cond)
        return self.combine(torch.cat([e[name] for name in self.parts], dim=1))  # (B, dim)


CONDITION_ENCODERS: dict[str, Callable[..., ConditionEmbedding]] = {
    "class": lambda spec, dim, text=None: ClassEmbedding(spec.size, dim),
    "vector": lambda spec, dim, text=None: VectorEmbedding(spec.size, dim),
    "image": lambda spec, dim, text=None: ImageEncoder(spec, dim),
    "text": TextEncoder,
    "dict": lambda spec, dim, text=None: DictEncoder(spec, dim, text=text),
}
"""Condition kind -> the encoder built for it, ``(spec, dim, text=None) -> ConditionEmbedding``;
``text`` holds the :class:`TextSizes` of a text encoder (a dict's passes it to its parts)."""


def make_condition_embedding(
    num_classes: int,
    cond_dim: int,
    dim: int,
    spec: ConditionSpec | dict | None = None,
    film: bool = False,
    text: TextSizes | None = None,
) -> ConditionEmbedding | None:
    """The encoder of a model's condition, or None for an unconditional model.

    Args:
        num_classes: K > 0 for class labels, else 0.
        cond_dim: d > 0 for condition vectors, else 0.
        dim: embedding size.
        spec: the condition's spec (or its record), for any kind; then ``num_classes`` and
            ``cond_dim`` must be 0.
        film: a dict of an image and a text is encoded with the text modulating the image
            encoder (see :class:`DictEncoder`); other kinds refuse it.
        text: the sizes of the encoder of a text (or of a dict's text part); default
            :class:`TextSizes`'s.

    Example:
        >>> make_condition_embedding(10, 0, 8).kind, make_condition_embedding(0, 0, 8)
        ('class', None)
    """
    if num_classes < 0 or cond_dim < 0:
        raise ValueError(f"num_classes and cond_dim must be >= 0, got {num_classes} and {cond_dim}")
    if sum(bool(x) for x in (num_classes, cond_dim, spec)) > 1:
        raise ValueError(
            f"a model takes class labels, condition vectors or a condition spec, not both "
            f"(got num_classes={num_classes}, cond_dim={cond_dim}, spec={bool(spec)}); "
            "keep one of them"
        )
    if isinstance(spec, dict):
        spec = ConditionSpec.from_dict(spec)
    if num_classes:
        spec = ConditionSpec("class", num_classes)
    elif cond_dim:
        spec = ConditionSpec("vector", cond_dim)
    if spec is None:
        if film:
            raise FlowmatchError("film needs a dict condition of an image and a text, got none")
        return None
    if film:
        if spec.kind != "dict":
            raise FlowmatchError(
                f"film needs a dict condition of an image and a text, got a {spec.kind} condition"
            )
        return DictEncoder(spec, dim, film=True, text=text)
    return lookup(CONDITION_ENCODERS, spec.kind, "condition kind")(spec, dim, text)
