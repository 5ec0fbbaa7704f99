"""What the condition c of a data set is: a class, a vector, an image, a text or named parts.

Inside flowmatch a batch of conditions is always one tensor with a row per sample, so data
sets, couplings, batches, devices and guidance handle every kind alike:

============  ====================================  =========================================
kind          one condition, as given               the row stored and fed to the model
============  ====================================  =========================================
``class``     an int label (or its name)            (B,) long
``vector``    d numbers                             (B, d) float
``image``     a (C, H, W) float image               (B, C, H, W) float
``text``      a string (a prompt)                   (B, L) long token ids, 0-padded
``dict``      a mapping part name -> its value      (B, W) float: the parts' rows side by side
============  ====================================  =========================================

:meth:`ConditionSpec.encode` turns what a user gives (a prompt, a dict of an image and an
instruction...) into that tensor at the boundary and checks it; :meth:`ConditionSpec.unpack`
splits a ``dict`` row back into its parts for the encoders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from flowmatch.data.text import Vocabulary, drop_words
from flowmatch.errors import FlowmatchError, check_int, lookup

__all__ = ["CONDITION_KINDS", "ConditionSpec"]

CONDITION_KINDS = ("class", "vector", "image", "text", "dict")


@dataclass(frozen=True)
class ConditionSpec:
    """The kind and size of a data set's conditions; saved with every conditional run.

    Build one with the constructor for classes and vectors, or with :meth:`image`,
    :meth:`text` and :meth:`combine`. A data set exposes it as ``dataset.condition`` and its
    conditions as tensors in the stored form (see the module docstring); training writes it
    into the run's model config, from which the model builds its encoder.

    Attributes:
        kind: one of :data:`CONDITION_KINDS`.
        size: the number of classes K, the vector size d, C*H*W of an image, the most words
            L of a text, or the packed width W of a dict.
        names: optional class names, one per class.
        shape: (C, H, W) of an image condition.
        vocab: the tokens of a text condition's :class:`~flowmatch.data.text.Vocabulary`.
        parts: (name, spec) of each part of a dict condition, in packing order.

    Example:
        >>> spec = ConditionSpec("class", 3, ("a", "b", "c"))
        >>> ConditionSpec.from_dict(spec.to_dict()) == spec
        True
        >>> both = ConditionSpec.combine(
        ...     {"image": ConditionSpec.image((1, 2, 2)), "label": ConditionSpec("class", 3)}
        ... )
        >>> row = both.encode({"image": torch.ones(1, 2, 2), "label": 2}, n=4)
        >>> row.shape, both.unpack(row)["label"].tolist()
        (torch.Size([4, 5]), [2, 2, 2, 2])
    """

    kind: str
    size: int
    names: tuple[str, ...] = field(default=())
    shape: tuple[int, ...] = field(default=())
    vocab: tuple[str, ...] = field(default=())
    parts: tuple[tuple[str, ConditionSpec], ...] = field(default=())

    def __post_init__(self) -> None:
        lookup(CONDITION_KINDS, self.kind, "condition kind")
        check_int(self.size, "a condition's size")
        if self.names and (self.kind != "class" or len(self.names) != self.size):
            raise FlowmatchError(
                f"names are given per class: expected {self.size} for a class condition, "
                f"got {len(self.names)} for kind {self.kind!r}"
            )
        if (self.kind == "image") != bool(self.shape) or (
            self.shape and math.prod(self.shape) != self.size
        ):
            raise FlowmatchError(f"an image condition needs shape (C, H, W), got {self.shape}")
        if (self.kind == "text") != bool(self.vocab):
            raise FlowmatchError("a text condition (and only it) needs a vocabulary")
        if (self.kind == "dict") != bool(self.parts) or (
            self.parts and sum(p.width for _, p in self.parts) != self.size
        ):
            raise FlowmatchError("a dict condition needs parts whose widths add up to its size")

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def image(cls, shape: tuple[int, ...]) -> ConditionSpec:
        """Images of shape (C, H, W) as conditions (e.g. a camera observation)."""
        if len(shape) != 3 or min(shape) < 1:
            raise FlowmatchError(f"an image condition needs shape (C, H, W), got {tuple(shape)}")
        return cls("image", math.prod(shape), shape=tuple(int(s) for s in shape))

    @classmethod
    def text(cls, vocab: Vocabulary, length: int) -> ConditionSpec:
        """Prompts of at most ``length`` words, tokenized by ``vocab``."""
        return cls("text", check_int(length, "a text condition's length"), vocab=vocab.tokens)

    @classmethod
    def combine(cls, parts: Mapping[str, ConditionSpec]) -> ConditionSpec:
        """A condition made of named parts, e.g. ``{"image": ..., "instruction": ...}``."""
        if not parts or any(p.kind == "dict" for p in parts.values()):
            raise FlowmatchError("a dict condition needs one or more parts, none of them a dict")
        items = tuple((str(k), v) for k, v in parts.items())
        return cls("dict", sum(p.width for _, p in items), parts=items)

    # -- properties --------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Numbers per sample in the stored row: 1 for a class, ``size`` otherwise."""
        return 1 if self.kind == "class" else self.size

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary of a text condition."""
        return Vocabulary(self.vocab)

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.parts)

    @property
    def has_text(self) -> bool:
        """It is a text, or a dict with a text part."""
        return self.kind == "text" or any(p.kind == "text" for _, p in self.parts)

    # -- data sets ---------------------------------------------------------------------------------
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
        """Check the stored conditions of n samples; returns them in the stored form."""
        if not isinstance(cond, Tensor) or cond.shape[:1] != (n,):
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise FlowmatchError(f"{name} must have one row per sample ({n}), got {got}")
        return _CHECKS[self.kind](self, cond, n, name)

    # -- users' conditions -------------------------------------------------------------------------
    def encode(self, value: Any, n: int, name: str = "the condition") -> Tensor:
        """A user's condition(s) for n samples as the stored (n, ...) tensor, checked.

        One condition (a label, a vector, an image, a prompt, a dict of parts) is repeated
        for all n samples; n of them (a tensor with n rows, a list of n prompts) are taken
        as they are. Raises :class:`~flowmatch.errors.FlowmatchError` in one line.
        """
        return _ENCODERS[self.kind](self, value, n, name)

    def unpack(self, cond: Tensor) -> dict[str, Tensor]:
        """The parts (B, ...) of dict conditions (B, W), each in its own stored form."""
        out, start = {}, 0
        for part_name, part in self.parts:
            block = cond[:, start : start + part.width]  # (B, w)
            start += part.width
            out[part_name] = _FROM_FLOAT[part.kind](part, block)
        return out

    def drop_words(self, cond: Tensor, p: float, generator: torch.Generator) -> Tensor:
        """Stored conditions (B, ...) whose texts lose each known word to ``<unk>`` w.p. p.

        Word dropout (:func:`~flowmatch.data.text.drop_words`) of a text condition or of each
        text part of a packed dict; images, vectors and classes are returned unchanged. A
        condition without text is returned as it is and draws nothing from ``generator``.
        """
        if self.kind == "text":
            return drop_words(cond, p, generator)
        if not self.has_text:
            return cond
        out, start = cond.clone(), 0  # (B, W)
        for _, part in self.parts:
            if part.kind == "text":
                block = out[:, start : start + part.width]  # (B, L) ids stored as floats
                dropped = drop_words(block.round().long(), p, generator)
                out[:, start : start + part.width] = dropped.to(out.dtype)
            start += part.width
        return out

    # -- records -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "size": self.size, "names": list(self.names)}
        if self.shape:
            d["shape"] = list(self.shape)
        if self.vocab:
            d["vocab"] = list(self.vocab)
        if self.parts:
            d["parts"] = {k: p.to_dict() for k, p in self.parts}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConditionSpec:
        if not isinstance(d, dict) or not {"kind", "size"} <= d.keys():
            raise FlowmatchError("a condition record needs 'kind' and 'size'; the run is damaged")
        parts = tuple((k, cls.from_dict(p)) for k, p in d.get("parts", {}).items())
        return cls(
            d["kind"],
            d["size"],
            tuple(d.get("names", ())),
            tuple(d.get("shape", ())),
            tuple(d.get("vocab", ())),
            parts,
        )


# -- per kind: check the stored form ---------------------------------------------------------------
def _check_class(spec: ConditionSpec, cond: Tensor, n: int, name: str) -> Tensor:
    if cond.dtype.is_floating_point or cond.ndim != 1:
        raise FlowmatchError(
            f"{name}: class labels must be integers of shape (N,), got {cond.dtype} "
            f"of shape {tuple(cond.shape)}"
        )
    if bool(((cond < 0) | (cond >= spec.size)).any()):
        raise FlowmatchError(f"{name}: class labels must lie in 0..{spec.size - 1}")
    return cond.long()


def _check_float(spec: ConditionSpec, cond: Tensor, n: int, name: str) -> Tensor:
    """Vectors (n, d), images (n, C, H, W) and packed dicts (n, W): finite floats."""
    want = (n, *spec.shape) if spec.kind == "image" else (n, spec.size)
    c = cond.reshape(n, -1) if spec.kind == "vector" else cond
    if c.dtype.is_complex or c.dtype == torch.bool or tuple(c.shape) != want:
        what = {"image": "images", "vector": "condition vectors"}.get(spec.kind, "packed rows")
        raise FlowmatchError(
            f"{name}: {what} must be real of shape {want}, got {c.dtype} of shape "
            f"{tuple(cond.shape)}"
        )
    c = c.float()
    if not bool(torch.isfinite(c).all()):
        raise FlowmatchError(f"{name}: the conditions contain NaN or Inf")
    return c


def _check_tokens(spec: ConditionSpec, cond: Tensor, n: int, name: str) -> Tensor:
    if cond.dtype.is_floating_point or cond.dtype == torch.bool or cond.shape != (n, spec.size):
        raise FlowmatchError(
            f"{name}: token ids must be integers of shape ({n}, {spec.size}), got "
            f"{cond.dtype} of shape {tuple(cond.shape)}"
        )
    if bool(((cond < 0) | (cond >= len(spec.vocab))).any()):
        raise FlowmatchError(f"{name}: token ids must lie in 0..{len(spec.vocab) - 1}")
    return cond.long()


_CHECKS: dict[str, Callable[[ConditionSpec, Tensor, int, str], Tensor]] = {
    "class": _check_class,
    "vector": _check_float,
    "image": _check_float,
    "text": _check_tokens,
    "dict": _check_float,
}


# -- per kind: a user's value -> the stored form ---------------------------------------------------
def _repeat(spec: ConditionSpec, value: Any, n: int, name: str, one_ndim: int) -> Tensor:
    """A tensor of one condition (``one_ndim`` axes) repeated n times, or n of them checked."""
    if isinstance(value, bool) or (isinstance(value, str) and spec.kind != "class"):
        raise FlowmatchError(f"{name} must be a {spec.kind} condition, got {value!r}")
    try:
        c = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise FlowmatchError(
            f"{name} must be a {spec.kind} condition, got {type(value).__name__}"
        ) from None
    if c.ndim == one_ndim:
        c = c.unsqueeze(0).expand(n, *c.shape)
    elif c.ndim == one_ndim + 1 and c.shape[0] == 1:
        c = c.expand(n, *c.shape[1:])
    return spec.check(c, n, name)


def _encode_class(spec: ConditionSpec, value: Any, n: int, name: str) -> Tensor:
    if isinstance(value, str) and value in spec.names:
        value = spec.names.index(value)
    return _repeat(spec, value, n, name, 0)


def _encode_vector(spec: ConditionSpec, value: Any, n: int, name: str) -> Tensor:
    return _repeat(spec, value, n, name, 1)


def _encode_image(spec: ConditionSpec, value: Any, n: int, name: str) -> Tensor:
    try:
        c = torch.as_tensor(value) if not isinstance(value, (str, bool)) else None
    except (TypeError, ValueError, RuntimeError):
        c = None
    if c is None or c.ndim not in (3, 4) or tuple(c.shape[-3:]) != spec.shape:
        got = tuple(c.shape) if c is not None else repr(value)
        raise FlowmatchError(
            f"{name}: this model takes images of shape {spec.shape} (or ({n}, "
            f"{', '.join(map(str, spec.shape))})), got {got}"
        )
    return _repeat(spec, c, n, name, 3)


def _encode_text(spec: ConditionSpec, value: Any, n: int, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return _repeat(spec, value, n, name, 1)
    if isinstance(value, str):
        return spec.vocabulary.encode([value], spec.size).expand(n, -1)
    if isinstance(value, (list, tuple)) and len(value) in (1, n):
        ids = spec.vocabulary.encode(list(value), spec.size)  # (1 or n, L)
        return ids.expand(n, -1)
    raise FlowmatchError(
        f"{name} must be a prompt (a string) or a list of {n} prompts, got {type(value).__name__}"
        + (f" of {len(value)}" if isinstance(value, (list, tuple)) else "")
    )


def _encode_dict(spec: ConditionSpec, value: Any, n: int, name: str) -> Tensor:
    if isinstance(value, Tensor):  # already packed, e.g. a data set's held-out rows
        return _repeat(spec, value, n, name, 1)
    if not isinstance(value, Mapping):
        raise FlowmatchError(
            f"{name} must be a dict with parts {', '.join(spec.part_names)}, "
            f"got {type(value).__name__}"
        )
    missing = [k for k in spec.part_names if k not in value]
    extra = [str(k) for k in value if k not in spec.part_names]
    if missing or extra:
        what = f"lacks part {missing[0]!r}" if missing else f"has an unknown part {extra[0]!r}"
        raise FlowmatchError(f"{name} {what}; this model takes {', '.join(spec.part_names)}")
    rows = [
        part.encode(value[k], n, f"{name}[{k!r}]").reshape(n, -1).float()  # (n, w)
        for k, part in spec.parts
    ]
    return torch.cat(rows, dim=1)  # (n, W)


_ENCODERS: dict[str, Callable[[ConditionSpec, Any, int, str], Tensor]] = {
    "class": _encode_class,
    "vector": _encode_vector,
    "image": _encode_image,
    "text": _encode_text,
    "dict": _encode_dict,
}

# -- per kind: a part's block (B, w) of a packed dict -> its stored form -----------------------
_FROM_FLOAT: dict[str, Callable[[ConditionSpec, Tensor], Tensor]] = {
    "class": lambda spec, b: b[:, 0].round().long(),  # (B,)
    "vector": lambda spec, b: b,  # (B, d)
    "image": lambda spec, b: b.reshape(b.shape[0], *spec.shape),  # (B, C, H, W)
    "text": lambda spec, b: b.round().long(),  # (B, L)
}
