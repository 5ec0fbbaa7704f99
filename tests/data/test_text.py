"""Text conditions: words, the vocabulary's round trip through a run record, unknown words,
word dropout."""

import math

import pytest
import torch

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.text import PAD, SPECIALS, UNK, Vocabulary, drop_words, words
from flowmatch.errors import FlowmatchError

CAPTIONS = ["a thick seven", "a thin one", "the digit 7, drawn thick"]


def test_vocabulary_round_trips_through_the_condition_record():
    spec = ConditionSpec.text(Vocabulary.build(CAPTIONS), length=8)
    again = ConditionSpec.from_dict(spec.to_dict())
    assert again == spec
    prompts = ["a thick seven", "The digit 7 drawn THIN"]
    assert torch.equal(again.encode(prompts, 2), spec.encode(prompts, 2))
    assert spec.vocabulary.decode(spec.encode(prompts, 2)) == [" ".join(words(p)) for p in prompts]


def test_unknown_words_go_to_unk_and_never_raise():
    vocab = Vocabulary.build(CAPTIONS)
    ids = vocab.encode(["a purple seven", "zebra"], length=4)
    assert ids[0].tolist() == [vocab.tokens.index("a"), 1, vocab.tokens.index("seven"), 0]
    assert vocab.decode(ids) == [f"a {UNK} seven", UNK]
    assert vocab.tokens.index(UNK) == 1 and len(vocab) == len(set(vocab.tokens))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("one two three four five six seven eight nine", "at most 8"),
        (3, "prompt"),
        (["a", "b", "c"], "list of 2 prompts"),
        (torch.full((2, 8), 99), "token ids must lie"),
    ],
)
def test_bad_prompts_get_one_line(value, match):
    spec = ConditionSpec.text(Vocabulary.build(CAPTIONS), length=8)
    with pytest.raises(FlowmatchError, match=match) as info:
        spec.encode(value, 2)
    assert "\n" not in str(info.value)


def test_a_damaged_vocabulary_is_refused():
    with pytest.raises(FlowmatchError, match="must start with"):
        Vocabulary(("a", "b"))


def random_ids(n: int, length: int, vocab_size: int, seed: int = 0) -> torch.Tensor:
    """Token ids (n, length) with every kind of token: words, ``<unk>`` and padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab_size, (n, length), generator=g)  # words and <unk>
    used = torch.randint(0, length + 1, (n, 1), generator=g)  # words per prompt
    return torch.where(torch.arange(length) < used, ids, 0)  # 0-padded


def test_word_dropout_at_zero_changes_nothing():
    ids = random_ids(200, 8, 12)
    assert torch.equal(drop_words(ids, 0.0, torch.Generator().manual_seed(0)), ids)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.6])
def test_word_dropout_turns_only_known_words_into_unk_at_rate_p(p):
    ids = random_ids(2000, 8, 12)
    pad, unk = SPECIALS.index(PAD), SPECIALS.index(UNK)
    out = drop_words(ids, p, torch.Generator().manual_seed(1))
    changed = out != ids
    assert out.shape == ids.shape and out.dtype == ids.dtype
    assert bool((out[changed] == unk).all())  # a dropped word becomes <unk>...
    assert bool((ids[changed] > unk).all())  # ...and only a known word is dropped
    assert torch.equal(out == pad, ids == pad)  # padding stays where it was
    known = int((ids > unk).sum())
    rate = int(changed.sum()) / known
    assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / known), (p, rate)


def test_word_dropout_is_deterministic_under_a_seeded_generator():
    ids = random_ids(100, 8, 12)
    a = drop_words(ids, 0.3, torch.Generator().manual_seed(7))
    b = drop_words(ids, 0.3, torch.Generator().manual_seed(7))
    c = drop_words(ids, 0.3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_word_dropout_refuses_p_outside_0_1(p):
    with pytest.raises(FlowmatchError, match=r"must be in \[0, 1\)") as info:
        drop_words(torch.zeros(2, 3, dtype=torch.long), p, torch.Generator())
    assert "\n" not in str(info.value)


def test_word_dropout_of_a_dict_touches_its_text_part_only():
    text = ConditionSpec.text(Vocabulary.build(CAPTIONS), length=8)
    spec = ConditionSpec.combine({"camera": ConditionSpec.image((1, 2, 2)), "said": text})
    n = 500
    ids = random_ids(n, 8, len(text.vocab))
    cond = spec.encode({"camera": torch.rand(n, 1, 2, 2), "said": ids}, n)  # (n, 4 + 8)
    out = spec.drop_words(cond, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(out[:, :4], cond[:, :4])  # the picture is untouched
    alone = drop_words(ids, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(spec.unpack(out)["said"], alone)  # the same draws as the text alone
    assert not torch.equal(alone, ids)
    image = ConditionSpec.image((1, 2, 2))  # no text: unchanged, nothing drawn
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    x = torch.rand(3, 1, 2, 2)
    assert image.drop_words(x, 0.5, g) is x and torch.equal(g.get_state(), before)
