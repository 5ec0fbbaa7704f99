"""Captioned digits: the words follow the measured attributes; held-out phrasings are new."""

import random

import pytest
import torch

from flowmatch.data import get_dataset
from flowmatch.data.captions import DIGIT_SCHEME, SEEN_TEMPLATES, UNSEEN_TEMPLATES
from flowmatch.data.text import UNK, words


@pytest.fixture(scope="module")
def ds():
    return get_dataset("digits-captions")


def test_captions_say_the_class_and_the_measured_attributes(ds):
    levels = ds.levels(ds.train_data, ds.train_labels)  # (N, A) measured
    for i in range(0, len(ds.train_captions), 7):
        said = set(words(ds.train_captions[i]))
        label = int(ds.train_labels[i])
        assert said & set(DIGIT_SCHEME.nouns[label])
        for a, level in zip(DIGIT_SCHEME.attributes, levels[i].tolist(), strict=True):
            assert bool(said & set(a.high)) == (level == 1)
            assert bool(said & set(a.low)) == (level == -1)


def test_thick_captions_have_more_ink_within_each_class(ds):
    ink = DIGIT_SCHEME.attributes[0].measure(ds.train_data)
    levels = ds.levels(ds.train_data, ds.train_labels)[:, 0]
    for label in range(10):
        mine = ds.train_labels == label
        assert ink[mine & (levels == 1)].min() > ink[mine & (levels == -1)].max()
    assert (levels == 0).float().mean() > 0.2  # the middle third says nothing


def test_held_out_phrasings_never_occur_in_training(ds):
    train = {tuple(words(c)) for c in ds.train_captions}
    assert not train & {tuple(words(c)) for c in ds.test_captions}
    decoded = ds.condition.vocabulary.decode(ds.test_cond)
    assert any(UNK in c for c in decoded)  # held-out filler words are unknown, not errors
    rng = random.Random(0)
    seen = {t: DIGIT_SCHEME.compose(7, [1, 0], t, rng) for t in SEEN_TEMPLATES}
    assert DIGIT_SCHEME.compose(7, [1, 0], "a {adj} {noun}") == "a thick seven"
    assert all(ds.condition.encode(s, 1).shape == (1, ds.condition.size) for s in seen.values())
    assert not set(SEEN_TEMPLATES) & set(UNSEEN_TEMPLATES)


def test_the_condition_is_text_and_rows_match(ds):
    assert ds.condition.kind == "text" and ds.labelled == "digits-images"
    assert ds.train_cond.shape == (ds.train_data.shape[0], ds.condition.size)
    assert ds.train_cond.dtype == torch.long and ds.train_labels.shape == ds.train_cond.shape[:1]
    assert ds.test_cond.shape[0] == ds.test_data.shape[0] == ds.test_labels.shape[0]


def test_class_prompts_name_their_class_alone_in_the_phrasings_asked_for(ds):
    from flowmatch.data.captions import PHRASINGS

    labels = [k for k in range(10) for _ in range(6)]
    train = {tuple(words(c)) for c in ds.train_captions}
    adjectives = {w for a in DIGIT_SCHEME.attributes for w in a.low + a.high}
    for name, templates in PHRASINGS.items():
        prompts = DIGIT_SCHEME.class_prompts(labels, templates, seed=3)
        assert prompts == DIGIT_SCHEME.class_prompts(labels, templates, seed=3)
        for label, prompt in zip(labels, prompts, strict=True):
            said = set(words(prompt))
            assert said & set(DIGIT_SCHEME.nouns[label]) and not said & adjectives
            others = {w for k, nouns in enumerate(DIGIT_SCHEME.nouns) if k != label for w in nouns}
            assert not said & others
        # training phrasings are training captions; held-out ones never are
        in_training = [tuple(words(p)) in train for p in prompts]
        assert all(in_training) if name == "training" else not any(in_training)
