"""Text conditions as token ids: a word-level vocabulary built from a data set's captions.

A prompt is lower-cased and split into words (runs of letters and digits; everything else
separates them). Each word maps to its id in the vocabulary, a word the captions never used
maps to the unknown token ``<unk>``, and a prompt of fewer words than the model reads is
padded with ``<pad>`` (id 0). The vocabulary is plain data (a tuple of words), saved with the
run in its condition record, so a run tokenizes prompts as it did in training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError

__all__ = ["PAD", "SPECIALS", "UNK", "Vocabulary", "drop_words", "words"]

PAD, UNK = "<pad>", "<unk>"
SPECIALS = (PAD, UNK)
"""Tokens every vocabulary starts with: padding (id 0) and unknown words (id 1)."""

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The words of a prompt: lower-cased runs of letters and digits.

    Example:
        >>> words("A thick Seven, please!")
        ['a', 'thick', 'seven', 'please']
    """
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id table of a text condition; ids 0 and 1 are ``<pad>`` and ``<unk>``.

    Attributes:
        tokens: all tokens, the specials first; a token's id is its position.

    Example:
        >>> vocab = Vocabulary.build(["a thick seven", "a thin one"])
        >>> vocab.encode(["a thick one", "a purple seven"], length=4).tolist()
        [[2, 5, 3, 0], [2, 1, 4, 0]]
        >>> Vocabulary(vocab.tokens) == vocab  # the tokens alone rebuild it
        True
    """

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise FlowmatchError(
                f"a vocabulary must start with {', '.join(SPECIALS)}; the run's record is damaged"
            )
        if len(set(self.tokens)) != len(self.tokens):
            raise FlowmatchError("a vocabulary lists a word twice; the run's record is damaged")
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.tokens)})

    @classmethod
    def build(cls, captions: Iterable[str]) -> Vocabulary:
        """The vocabulary of every word in ``captions``, sorted, after the specials."""
        seen = {w for text in captions for w in words(text)}
        return cls(SPECIALS + tuple(sorted(seen)))

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, text: str) -> list[int]:
        """The ids of a prompt's words (unknown words: the id of ``<unk>``)."""
        unk = self._ids[UNK]
        return [self._ids.get(w, unk) for w in words(text)]

    def encode(self, texts: Sequence[str], length: int) -> Tensor:
        """Token ids (N, length) of N prompts, padded with 0.

        Raises:
            FlowmatchError: a prompt is not a string or has more than ``length`` words.
        """
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise FlowmatchError(f"a prompt must be a string, got {type(text).__name__}")
            ids = self.ids(text)
            if len(ids) > length:
                raise FlowmatchError(
                    f"the prompt {text!r} has {len(ids)} words; this model reads at most {length}"
                )
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def decode(self, ids: Tensor) -> list[str]:
        """The prompts (as the model saw them, unknown words as ``<unk>``) of ids (N, L)."""
        return [" ".join(self.tokens[i] for i in row if i != 0) for row in ids.tolist()]


def drop_words(ids: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """Word dropout: each known word of token ids (B, L) becomes ``<unk>`` with probability p.

    Padding and words already unknown stay as they are. Trained on such prompts, a text
    encoder learns to read a prompt past the words it does not know, as it must for a
    phrasing it never saw. A training-time corruption only: prompts are never dropped at
    sampling. All randomness comes from ``generator`` (one U[0, 1) draw per token), so
    training stays reproducible and resumable.

    Args:
        ids: token ids (B, L), 0-padded.
        p: the probability in [0, 1) that a known word is replaced.
        generator: the source of the draws.

    Returns:
        New token ids (B, L).

    References:
        Bowman et al., "Generating Sentences from a Continuous Space" (2016) (word dropout);
        Iyyer et al., "Deep Unordered Composition Rivals Syntactic Methods for Text
        Classification" (2015).

    Example:
        >>> ids = torch.tensor([[2, 5, 3, 0]])
        >>> drop_words(ids, 0.0, torch.Generator().manual_seed(0)).tolist()
        [[2, 5, 3, 0]]
    """
    if not 0.0 <= p < 1.0:
        raise FlowmatchError(f"the word dropout probability must be in [0, 1), got {p}")
    unk = SPECIALS.index(UNK)
    u = torch.rand(ids.shape, generator=generator, device=generator.device).to(ids.device)
    return torch.where((u < p) & (ids > unk), torch.full_like(ids, unk), ids)  # (B, L)
