"""Language instructions for the point robot: what they mean, how they are said, how to parse them.

An instruction means a side to pass the obstacle on and a goal to reach, either of which may
be left open: :class:`Instruction` (side, goal). The robot drives towards +x, so its *left* is
the upper side (+y) and its *right* the lower side (-y). An instruction is said by filling a
template with words of one family ("left"/"right", "upper"/"lower", "above"/"below") and a
colour; the templates are split into the phrasings used for training and held-out phrasings,
sentences never shown in training around the same side and colour words (a word-level
vocabulary cannot know a word it never saw). :func:`parse` reads the meaning back from the
words alone, so ``parse(say(m, k)) == m`` for every meaning m and template k.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flowmatch.errors import FlowmatchError, lookup

__all__ = [
    "GOALS",
    "MEANINGS",
    "Instruction",
    "parse",
    "phrasings",
    "say",
]

GOALS = ("red", "blue")
"""The goals' colours; a goal is named by its index in this tuple."""

# word -> side: +1 is the robot's left (above the obstacle), -1 its right (below)
SIDE_WORDS = {
    "left": 1, "upper": 1, "above": 1, "top": 1, "over": 1,
    "right": -1, "lower": -1, "below": -1, "bottom": -1, "under": -1,
}  # fmt: skip
# one family of words per template slot: (word for +1, word for -1)
FAMILIES = {
    "left": ("left", "right"),
    "upper": ("upper", "lower"),
    "above": ("above", "below"),
}

# template kind -> (training phrasings, held-out phrasings); {left} etc. name a side family
TEMPLATES = {
    "side": (
        (
            "pass the obstacle on the {left}",
            "take the {upper} side",
            "pass {above} the obstacle",
            "go around the obstacle on the {left}",
        ),
        ("keep to the {upper} side of the obstacle",),
    ),
    "goal": (
        (
            "go to the {color} goal",
            "reach the {color} target",
            "drive to the {color} one",
        ),
        ("head for the {color} goal",),
    ),
    "both": (
        (
            "take the {upper} side to the {color} goal",
            "go to the {color} goal passing the obstacle on the {left}",
            "pass {above} the obstacle and reach the {color} target",
        ),
        ("head for the {color} goal via the {upper} side",),
    ),
}
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Instruction:
    """What an instruction asks for; ``None`` leaves that choice to the robot.

    Attributes:
        side: +1 to pass the obstacle on the robot's left (above), -1 on its right (below).
        goal: index into :data:`GOALS` of the goal to reach.
    """

    side: int | None = None
    goal: int | None = None

    def __post_init__(self) -> None:
        if self.side not in (None, 1, -1):
            raise FlowmatchError(f"an instruction's side is +1, -1 or None, got {self.side!r}")
        if self.goal is not None and self.goal not in range(len(GOALS)):
            raise FlowmatchError(
                f"an instruction's goal is an index 0..{len(GOALS) - 1} or None, got {self.goal!r}"
            )

    @property
    def kind(self) -> str:
        """``"side"``, ``"goal"``, ``"both"`` or ``"none"``: which choices it makes."""
        if self.side is None:
            return "none" if self.goal is None else "goal"
        return "side" if self.goal is None else "both"


MEANINGS = tuple(
    Instruction(side, goal)
    for side in (None, 1, -1)
    for goal in (None, *range(len(GOALS)))
    if side is not None or goal is not None
)
"""Every instruction that asks for something: 2 sides, 2 goals and 4 combinations."""


def phrasings(kind: str, split: str = "train") -> tuple[str, ...]:
    """The templates of one kind (``"side"``, ``"goal"``, ``"both"``) in one split."""
    train, heldout = lookup(TEMPLATES, kind, "instruction kind")
    return train if lookup(SPLITS, split, "phrasing split") == "train" else heldout


def say(meaning: Instruction, template: int, split: str = "train") -> str:
    """The instruction ``meaning`` in words, with template number ``template`` of its kind.

    The empty instruction (no side, no goal) is the empty string.

    Example:
        >>> say(Instruction(side=1, goal=1), 0)
        'take the upper side to the blue goal'
        >>> parse(say(Instruction(side=-1), 2)) == Instruction(side=-1)
        True
    """
    if meaning.kind == "none":
        return ""
    templates = phrasings(meaning.kind, split)
    text = templates[template % len(templates)]
    words = {}
    if meaning.side is not None:
        words = {name: pair[0 if meaning.side == 1 else 1] for name, pair in FAMILIES.items()}
    if meaning.goal is not None:
        words["color"] = GOALS[meaning.goal]
    return text.format(**words)


def parse(text: str) -> Instruction:
    """The meaning of an instruction from its side words and colour words.

    Words other than those of :data:`SIDE_WORDS` and :data:`GOALS` are ignored, so any
    phrasing that names a side and/or a colour is understood; an instruction naming both
    sides, or both colours, is refused.

    Args:
        text: the instruction, any case and punctuation.

    Returns:
        The :class:`Instruction`; the empty one for a text that names neither.
    """
    if not isinstance(text, str):
        raise FlowmatchError(f"an instruction must be a string, got {type(text).__name__}")
    words = re.findall(r"[a-z]+", text.lower())
    sides = {SIDE_WORDS[w] for w in words if w in SIDE_WORDS}
    goals = {GOALS.index(w) for w in words if w in GOALS}
    if len(sides) > 1 or len(goals) > 1:
        raise FlowmatchError(f"the instruction {text!r} names two sides or two goals")
    return Instruction(next(iter(sides), None), next(iter(goals), None))
