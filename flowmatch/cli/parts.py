"""``--part NAME=VALUE``: the parts of a dict condition (an image and an instruction, say).

Each part of the run's :class:`~flowmatch.data.conditions.ConditionSpec` is given once, its
VALUE read by the part's kind:

==========  ================================================================================
kind        VALUE
==========  ================================================================================
``text``    the words themselves (``--part instruction="go to the red goal"``; may be empty)
``class``   a class number or name, as ``--class K``
``vector``  a ``.npy``/``.npz``/``.csv`` file of d numbers, or (m, d) for m samples
``image``   a ``.png``/``.jpg`` file (pixels k / 255), or a ``.npy``/``.npz`` file of one
            image (C, H, W) or m images (m, C, H, W)
==========  ================================================================================

A file of m > 1 rows conditions m samples, one row each (and sets ``--n`` when it is not
given, as ``--cond FILE`` does); everything else is shared by all samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.errors import FlowmatchError

if TYPE_CHECKING:
    from torch import Tensor

    from flowmatch.data.conditions import ConditionSpec

__all__ = ["PART_VALUES", "part_conditions", "part_usage"]

PART_VALUES = {
    "text": "TEXT",
    "class": "K (a class number or name)",
    "vector": "FILE (.npy/.npz/.csv of {size} numbers)",
    "image": "FILE (.png/.jpg, or .npy/.npz of shape {shape})",
}
"""A part's kind -> what its VALUE is, for the help and the errors."""


def part_usage(spec: ConditionSpec) -> str:
    """How to give every part of a dict condition, e.g. ``--part image=FILE (...) --part ...``.

    Example:
        >>> from flowmatch.data.conditions import ConditionSpec
        >>> spec = ConditionSpec.combine({"goal": ConditionSpec("class", 2)})
        >>> part_usage(spec)
        '--part goal=K (a class number or name)'
    """
    return " ".join(f"--part {name}={_value_help(part)}" for name, part in spec.parts)


def _value_help(part: ConditionSpec) -> str:
    return PART_VALUES[part.kind].format(size=part.size, shape=part.shape)


def part_conditions(
    given: list[str], spec: ConditionSpec, n: int, *, fixed: bool
) -> tuple[int, dict[str, Any]]:
    """The dict condition of the ``--part NAME=VALUE`` flags, read and checked.

    Args:
        given: the flags' values, one ``NAME=VALUE`` per part.
        spec: the run's dict condition.
        n: the number of samples asked for (``--n`` or its default).
        fixed: whether ``--n`` was given; if not, part files of m > 1 rows set n to m.

    Returns:
        The number of samples and the dict part name -> its value, for
        :meth:`~flowmatch.data.conditions.ConditionSpec.encode`.

    Raises:
        FlowmatchError: in one line, for a flag without ``=``, an unknown, repeated or
            missing part, an unreadable file, an image or vector of the wrong shape, a class
            that is not one, or part files whose row counts disagree with each other or
            with ``--n``.
    """
    parts = dict(spec.parts)
    values: dict[str, Any] = {}
    for item in given:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise FlowmatchError(f"--part takes NAME=VALUE, got {item!r}; use {part_usage(spec)}")
        if name not in parts:
            raise FlowmatchError(
                f"--part {name}: this run has no part {name!r}; its parts are "
                f"{', '.join(parts)} ({part_usage(spec)})"
            )
        if name in values:
            raise FlowmatchError(f"--part {name} is given twice; give each part once")
        values[name] = _READERS[parts[name].kind](parts[name], text, f"--part {name}")
    missing = [name for name in parts if name not in values]
    if missing:
        part = parts[missing[0]]
        raise FlowmatchError(
            f"this run's condition needs every part; give --part {missing[0]}="
            f"{_value_help(part)} too"
        )
    rows = {name: v.shape[0] for name, v in values.items() if _is_rows(parts[name], v)}
    counts = sorted(set(rows.values()))
    if len(counts) > 1:
        have = ", ".join(f"{name} {m}" for name, m in rows.items())
        raise FlowmatchError(
            f"the --part files hold different numbers of rows ({have}); give each one row, "
            "or all the same number of rows, one per sample"
        )
    if counts and fixed and counts[0] != n:
        name = next(iter(rows))
        raise FlowmatchError(
            f"--part {name} holds {counts[0]} rows, one per sample, but --n is {n}; drop --n "
            "or give one row"
        )
    return (counts[0] if counts else n), values


def _is_rows(part: ConditionSpec, value: Any) -> bool:
    """Whether a part's value holds several rows, one per sample (not one shared value)."""
    return part.kind in ("image", "vector") and value.shape[0] > 1


def _read_text(part: ConditionSpec, text: str, flag: str) -> str:
    from flowmatch.data.text import words

    count = len(words(text))
    if count > part.size:  # a text part's size is the most words it reads
        raise FlowmatchError(
            f"{flag}: {count} words, but this run reads at most {part.size}; shorten it"
        )
    return text


def _read_class(part: ConditionSpec, text: str, flag: str) -> int:
    try:
        k = int(text)
    except ValueError:
        names = [name.lower() for name in part.names]
        if text.lower() not in names:
            known = f", a class name ({', '.join(part.names)})" if part.names else ""
            raise FlowmatchError(
                f"{flag}: a class part takes a class number 0..{part.size - 1}{known}, got {text!r}"
            ) from None
        k = names.index(text.lower())
    if not 0 <= k < part.size:
        raise FlowmatchError(f"{flag}: unknown class {k}; this part has classes 0..{part.size - 1}")
    return k


def _read_vector(part: ConditionSpec, text: str, flag: str) -> Tensor:
    from flowmatch.data import load_array

    x = load_array(_file(text, flag))  # (m, d), or (d, 1) for a 1-D file
    if x.numel() == part.size:
        return x.reshape(1, part.size)  # one vector, for every sample
    if x.shape[1] != part.size:
        raise FlowmatchError(
            f"{flag}: this part takes vectors of {part.size} numbers, (m, {part.size}) for m "
            f"samples, got shape {tuple(x.shape)} from {text}"
        )
    return x


def _read_image(part: ConditionSpec, text: str, flag: str) -> Tensor:
    from flowmatch.data import load_array
    from flowmatch.data.image_files import IMAGE_SUFFIXES, read_image

    path = _file(text, flag)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        x = read_image(path)[None]  # (1, C, H, W)
    else:
        x = load_array(path, allow_images=True)
        x = x[None] if tuple(x.shape) == part.shape else x  # (m, C, H, W)
    if tuple(x.shape[1:]) != part.shape:
        got = tuple(x.shape[1:]) if x.shape[0] == 1 else tuple(x.shape)
        raise FlowmatchError(
            f"{flag}: this run takes images of shape {part.shape} (C, H, W), or (m, "
            f"{', '.join(map(str, part.shape))}) for m samples, got {got} from {text}"
        )
    return x


def _file(text: str, flag: str) -> Path:
    if not text or not Path(text).is_file():
        got = f"{text}: no such file" if text else "no file named"
        raise FlowmatchError(f"{flag}: {got}; give {flag}=FILE with the path of a file")
    return Path(text)


_READERS = {"text": _read_text, "class": _read_class, "vector": _read_vector, "image": _read_image}
