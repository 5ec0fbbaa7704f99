"""Text conditions: words, the vocabulary's round trip through a run record, unknown words."""

import pytest
import torch

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.text import UNK, Vocabulary, words
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
