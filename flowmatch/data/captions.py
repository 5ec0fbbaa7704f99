"""Captioned images: the 8x8 digits and Fashion-MNIST with prompts composed from attributes.

A caption says what the label determines (the class, by one of its names) and what can be
measured in the image: for the digits the stroke thickness (ink: mean pixel value) and the
width (the ink-weighted spread of columns), for Fashion-MNIST the size (share of pixels that
are not background) and the brightness (mean value of those pixels). An attribute is put in
words only where the image is clearly one way: below the lower tertile of its class in the
training split ("thin", "narrow"...), above the upper one ("thick", "wide"...); in between
the caption does not mention it.

A *meaning* (class and attribute levels) has many phrasings: synonyms, word order and the
templates of :data:`SEEN_TEMPLATES`. The training captions use only those; the held-out
rows are captioned with :data:`UNSEEN_TEMPLATES`, sentence shapes (and some filler words)
that training never shows, to measure how prompts generalize.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.images import ImageDataset, digits_images, fashion_mnist
from flowmatch.data.text import Vocabulary, words

__all__ = [
    "DIGIT_SCHEME",
    "FASHION_SCHEME",
    "PHRASINGS",
    "SEEN_TEMPLATES",
    "UNSEEN_TEMPLATES",
    "Attribute",
    "CaptionScheme",
    "CaptionedImages",
    "digits_captions",
    "fashion_captions",
]

SEEN_TEMPLATES = (
    "a {adj} {noun}",
    "{adj} {noun}",
    "a {adj} {cat} {noun}",
    "the {cat} {noun} , {adj}",
    "an image of a {adj} {noun}",
    "a picture of a {noun} , {adj}",
)
"""Sentence shapes of the training captions: {adj} the attribute words, {noun} a class name,
{cat} the word for what the set shows."""

UNSEEN_TEMPLATES = (
    "{noun} drawn {adj}",
    "draw a {noun} that looks {adj}",
    "i would like a {adj} {noun} please",
    "show me some {cat} : {adj} {noun}",
)
"""Sentence shapes never used in training (held-out phrasings); each has words that no
training template has, so no held-out caption equals a training one."""

PHRASINGS = {"training": SEEN_TEMPLATES, "held-out": UNSEEN_TEMPLATES}
"""The two sets of sentence shapes by name: how training captions are phrased, and how
held-out images are (never seen in training)."""


@dataclass(frozen=True)
class Attribute:
    """A property measured on images and put in words at its two ends.

    Attributes:
        name: what it is, e.g. ``"thickness"``.
        measure: images (N, C, H, W) in [0, 1] -> values (N,).
        low: words for a low value, the first the plainest (e.g. ``("thin", "fine")``).
        high: words for a high value (e.g. ``("thick", "bold")``).
    """

    name: str
    measure: Callable[[Tensor], Tensor]
    low: tuple[str, ...]
    high: tuple[str, ...]


@dataclass(frozen=True)
class CaptionScheme:
    """How the captions of a data set are composed.

    Attributes:
        nouns: the names of each class (synonyms), the first the plainest.
        category: words for what the images show (e.g. ``("digit", "number")``).
        attributes: the measured attributes.
    """

    nouns: tuple[tuple[str, ...], ...]
    category: tuple[str, ...]
    attributes: tuple[Attribute, ...]

    def compose(
        self, label: int, levels: Sequence[int], template: str, rng: random.Random | None = None
    ) -> str:
        """One phrasing of a meaning: class ``label`` and a level per attribute.

        Args:
            label: the class.
            levels: -1 (low), 0 (not said) or +1 (high), one per attribute.
            template: one of :data:`SEEN_TEMPLATES` or :data:`UNSEEN_TEMPLATES`.
            rng: picks synonyms and the order of the attribute words; None: the plainest
                words, in the scheme's order.

        Example:
            >>> DIGIT_SCHEME.compose(7, [1, -1], "a {adj} {noun}")
            'a thick narrow seven'
        """
        pick = (lambda options: options[0]) if rng is None else rng.choice
        adjs = [
            pick(a.high if level > 0 else a.low)
            for a, level in zip(self.attributes, levels, strict=True)
            if level
        ]
        if rng is not None:
            rng.shuffle(adjs)
        text = template.format(
            adj=" ".join(adjs), noun=pick(self.nouns[label]), cat=pick(self.category)
        )
        return " ".join(text.split())

    def class_prompts(
        self, labels: Sequence[int], templates: Sequence[str], seed: int = 0
    ) -> list[str]:
        """One prompt per label that names its class and nothing else (no attribute words).

        Each prompt has a template drawn from ``templates`` and synonyms drawn at random,
        from a generator seeded by ``seed``, so the same call gives the same prompts. Such
        class-only phrasings are among the training captions (an image in the middle third
        of every attribute is captioned by its class alone).

        Example:
            >>> DIGIT_SCHEME.class_prompts([7, 1], PHRASINGS["held-out"], seed=0)
            ['show me some digit : 7', 'i would like a 1 please']
        """
        rng = random.Random(seed)
        none = [0] * len(self.attributes)
        return [self.compose(int(k), none, rng.choice(templates), rng) for k in labels]

    def measure(self, x: Tensor) -> Tensor:
        """Every attribute of images (N, C, H, W) in [0, 1], (N, A)."""
        return torch.stack([a.measure(x) for a in self.attributes], dim=1)


def _ink(x: Tensor) -> Tensor:
    return x.mean(dim=(1, 2, 3))  # (N,)


def _spread(x: Tensor) -> Tensor:
    """Ink-weighted standard deviation of the column index (how wide the shape is), (N,)."""
    cols = x.sum(dim=(1, 2))  # (N, W)
    pos = torch.arange(cols.shape[1], dtype=x.dtype)
    w = cols / cols.sum(dim=1, keepdim=True).clamp_min(1e-8)
    mean = (w * pos).sum(dim=1, keepdim=True)
    return (w * (pos - mean).square()).sum(dim=1).sqrt()


def _coverage(x: Tensor) -> Tensor:
    return (x > 0.1).float().mean(dim=(1, 2, 3))  # (N,)


def _brightness(x: Tensor) -> Tensor:
    fg = (x > 0.1).float()
    return (x * fg).sum(dim=(1, 2, 3)) / fg.sum(dim=(1, 2, 3)).clamp_min(1.0)  # (N,)


_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_SCHEME = CaptionScheme(
    nouns=tuple((name, str(k)) for k, name in enumerate(_DIGIT_NAMES)),
    category=("digit", "number"),
    attributes=(
        Attribute("thickness", _ink, ("thin", "fine", "light"), ("thick", "bold", "heavy")),
        Attribute("width", _spread, ("narrow", "slim"), ("wide", "broad")),
    ),
)
"""Digits: the class by word or numeral; stroke thickness (ink) and width."""

FASHION_SCHEME = CaptionScheme(
    nouns=(
        ("top", "tee"),
        ("trousers", "pants"),
        ("pullover", "sweater"),
        ("dress", "gown"),
        ("coat", "jacket"),
        ("sandal", "flip flop"),
        ("shirt", "blouse"),
        ("sneaker", "trainer"),
        ("bag", "handbag"),
        ("ankle boot", "boot"),
    ),
    category=("item", "product"),
    attributes=(
        Attribute("size", _coverage, ("small", "compact"), ("large", "big")),
        Attribute("brightness", _brightness, ("dark", "dim"), ("bright", "pale")),
    ),
)
"""Fashion-MNIST: the class by one of two names; size (coverage) and brightness."""


class CaptionedImages(ImageDataset):
    """Images whose condition is a caption (token ids, :meth:`ConditionSpec.text`).

    Attributes:
        scheme: how the captions are composed.
        thresholds: (K, A, 2) per class and attribute, the training split's tertiles: below
            the first an image is "low", above the second "high".
        train_labels, test_labels: the classes of the rows (N,), (M,).
        train_captions, test_captions: the captions as text.
        labelled: the name of the same images labelled by class (whose reference
            classifier scores samples).
    """

    scheme: CaptionScheme
    thresholds: Tensor
    train_labels: Tensor
    test_labels: Tensor
    train_captions: list[str]
    test_captions: list[str]
    labelled: str

    def levels(self, x: Tensor, labels: Tensor) -> Tensor:
        """Attribute levels (N, A) of images (N, C, H, W) in [0, 1] of classes ``labels``."""
        value = self.scheme.measure(x)  # (N, A)
        t = self.thresholds[labels]  # (N, A, 2)
        return (value > t[..., 1]).long() - (value < t[..., 0]).long()


def _captioned(
    name: str, base: ImageDataset, scheme: CaptionScheme, per_image: int, seed: int
) -> CaptionedImages:
    """Caption every training image ``per_image`` times (seen templates), each test image once
    (unseen templates); the vocabulary is that of the training captions."""
    x, y = base.train_data, base.train_cond
    value = scheme.measure(x)  # (N, A)
    k = len(scheme.nouns)
    q = torch.tensor([1 / 3, 2 / 3])
    thresholds = torch.stack([value[y == c].quantile(q, dim=0).T for c in range(k)])  # (K,A,2)
    rng = random.Random(seed)
    ds = CaptionedImages.__new__(CaptionedImages)
    ds.scheme, ds.thresholds = scheme, thresholds
    train_levels = ds.levels(x, y).tolist()
    test_levels = ds.levels(base.test_data, base.test_cond).tolist()
    train_captions = [
        scheme.compose(int(c), lv, rng.choice(SEEN_TEMPLATES), rng)
        for c, lv in zip(y.tolist(), train_levels, strict=True)
        for _ in range(per_image)
    ]
    test_captions = [
        scheme.compose(int(c), lv, rng.choice(UNSEEN_TEMPLATES), rng)
        for c, lv in zip(base.test_cond.tolist(), test_levels, strict=True)
    ]
    vocab = Vocabulary.build(train_captions)
    length = 4 + max(len(words(s)) for s in train_captions + test_captions)
    spec = ConditionSpec.text(vocab, length)
    ImageDataset.__init__(
        ds,
        name,
        x.repeat_interleave(per_image, dim=0),
        vocab.encode(train_captions, length),
        base.test_data,
        vocab.encode(test_captions, length),
        base.class_names,
        condition=spec,
    )
    ds.train_labels, ds.test_labels = y.repeat_interleave(per_image), base.test_cond
    ds.train_captions, ds.test_captions = train_captions, test_captions
    ds.labelled = base.name
    return ds


# captioned set -> (its labelled images, how to caption them, captions per training image)
_SOURCES: dict[str, tuple[Callable[[], ImageDataset], CaptionScheme, int]] = {
    "digits-captions": (digits_images, DIGIT_SCHEME, 4),
    "fashion-captions": (fashion_mnist, FASHION_SCHEME, 1),
}


@cache
def _cached(name: str) -> CaptionedImages:
    images, scheme, per_image = _SOURCES[name]
    return _captioned(name, images(), scheme, per_image=per_image, seed=0)


def digits_captions() -> CaptionedImages:
    """The 8x8 digits (1x8x8 in [0, 1]), each training image with 4 captions.

    Example:
        >>> ds = digits_captions()
        >>> ds.condition.kind, ds.train_data.shape[0], ds.test_data.shape[0]
        ('text', 5752, 359)
    """
    return copy.copy(_cached("digits-captions"))  # a copy: training moves its rows


def fashion_captions() -> CaptionedImages:
    """Fashion-MNIST (1x28x28 in [0, 1]), each training image with one caption."""
    return copy.copy(_cached("fashion-captions"))
