"""The condition encoders: shapes, the learned null, whole-condition dropping, bad conditions."""

import pytest
import torch

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.text import Vocabulary
from flowmatch.errors import FlowmatchError
from flowmatch.models import (
    CONDITION_ENCODERS,
    ModelConfig,
    build_model,
    guided_velocity,
    make_condition_embedding,
)
from flowmatch.models.condition_encoders import DictEncoder

VOCAB = Vocabulary.build(["go to the blue goal", "pass the obstacle on the left"])
SPECS = {
    "class": ConditionSpec("class", 3),
    "vector": ConditionSpec("vector", 4),
    "image": ConditionSpec.image((3, 16, 16)),
    "text": ConditionSpec.text(VOCAB, 8),
    "dict": ConditionSpec.combine(
        {"image": ConditionSpec.image((3, 16, 16)), "instruction": ConditionSpec.text(VOCAB, 8)}
    ),
}
VALUES = {
    "class": 2,
    "vector": [0.5, -1.0, 2.0, 0.0],
    "image": torch.rand(3, 16, 16),
    "text": "go to the blue goal",
    "dict": {"image": torch.rand(3, 16, 16), "instruction": "pass the obstacle on the left"},
}


def encoder(kind, dim=12):
    torch.manual_seed(0)
    return CONDITION_ENCODERS[kind](SPECS[kind], dim)


def test_the_registry_covers_every_condition_kind():
    from flowmatch.data.conditions import CONDITION_KINDS

    assert set(CONDITION_ENCODERS) == set(CONDITION_KINDS)


@pytest.mark.parametrize("kind", list(SPECS))
def test_encoder_shapes_null_and_drop(kind):
    enc = encoder(kind)
    c = enc.check(VALUES[kind], 3)  # one condition for 3 samples
    e = enc(c, 3)
    assert e.shape == (3, 12) and torch.isfinite(e).all()
    null = enc(None, 3)
    torch.testing.assert_close(null, enc.null().expand(3, 12))
    mixed = enc(c, 3, torch.tensor([True, False, True]))
    torch.testing.assert_close(mixed[[0, 2]], null[[0, 2]])
    torch.testing.assert_close(mixed[1], e[1])
    loss = mixed.square().sum()
    loss.backward()  # every parameter is reached when a batch drops some conditions
    assert all(p.grad is not None for p in enc.parameters())


def test_a_dict_condition_depends_on_each_part():
    enc = encoder("dict")
    base = VALUES["dict"]
    e0 = enc(enc.check(base, 1), 1)
    other_image = enc(enc.check({**base, "image": torch.zeros(3, 16, 16)}, 1), 1)
    other_words = enc(enc.check({**base, "instruction": "go to the blue goal"}, 1), 1)
    assert not torch.allclose(e0, other_image) and not torch.allclose(e0, other_words)


def film_encoder(dim=12):
    torch.manual_seed(0)
    return DictEncoder(SPECS["dict"], dim, film=True)


def test_film_starts_as_the_plain_encoder_and_lets_the_words_reach_the_image_features():
    plain, film = encoder("dict"), film_encoder()
    c = film.check(VALUES["dict"], 2)
    torch.testing.assert_close(film(c, 2), plain(c, 2))  # zero modulation: the identity
    with torch.no_grad():
        for layer in film.film:
            layer.weight.normal_()
    image = torch.rand(3, 16, 16)
    said = ["go to the blue goal", "pass the obstacle on the left"]

    def image_embedding(enc):
        return [
            enc.part_embeddings(enc.check({"image": image, "instruction": words}, 1))["image"]
            for words in said
        ]

    a, b = image_embedding(plain)
    assert torch.equal(a, b)  # without FiLM the picture is read the same whatever is said
    a, b = image_embedding(film)
    assert not torch.allclose(a, b)  # with it, the words change how the picture is read
    film(None, 3, None).sum().backward()
    film(c, 2, torch.tensor([True, False])).square().sum().backward()
    assert all(p.grad is not None for p in film.parameters())


def test_film_needs_an_image_and_a_text():
    spec = ConditionSpec.combine({"image": SPECS["image"], "goal": SPECS["class"]})
    with pytest.raises(FlowmatchError, match="one image part and one text part"):
        DictEncoder(spec, 8, film=True)
    with pytest.raises(FlowmatchError, match="got a text condition"):
        make_condition_embedding(0, 0, 8, SPECS["text"], film=True)


@pytest.mark.parametrize(
    ("kind", "value", "match"),
    [
        ("image", torch.rand(3, 8, 8), r"images of shape \(3, 16, 16\)"),
        ("image", torch.full((3, 16, 16), float("nan")), "NaN"),
        ("dict", {"image": torch.rand(3, 16, 16)}, "lacks part 'instruction'"),
        ("dict", {**VALUES["dict"], "goal": 1}, "unknown part 'goal'"),
        ("dict", "go left", "must be a dict"),
        ("dict", {**VALUES["dict"], "image": torch.rand(1, 16, 16)}, r"\(3, 16, 16\)"),
        ("text", 7, "prompt"),
        ("image", {"not": "an image"}, "takes images"),
    ],
)
def test_bad_conditions_get_one_line(kind, value, match):
    with pytest.raises(FlowmatchError, match=match) as info:
        encoder(kind).check(value, 2)
    assert "\n" not in str(info.value)


def test_a_spec_in_the_model_config_builds_and_guidance_zero_ignores_the_prompt():
    cfg = ModelConfig(name="unet", channels=8, levels=1, condition=SPECS["text"].to_dict())
    torch.manual_seed(0)
    v = build_model(cfg, (1, 8, 8))
    for p in v.parameters():  # output and modulation start at zero: make v depend on c
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 1, 8, 8)
    a = v.check_condition("go to the blue goal", 2)
    b = v.check_condition("pass the obstacle on the left", 2)
    torch.testing.assert_close(guided_velocity(v, x, 0.3, a, 0.0), v(x, 0.3, None))
    torch.testing.assert_close(
        guided_velocity(v, x, 0.3, a, 0.0), guided_velocity(v, x, 0.3, b, 0.0)
    )
    w = 2.5  # the doubled-batch path equals the formula
    v_c, v_u = v(x, 0.3, a), v(x, 0.3, None)
    assert not torch.allclose(v_c, v_u) and not torch.allclose(v_c, v(x, 0.3, b))
    torch.testing.assert_close(guided_velocity(v, x, 0.3, a, w), v_u + w * (v_c - v_u))


@pytest.mark.parametrize("kind", ["image", "text", "dict"])
def test_forward_refuses_rows_of_the_wrong_shape_or_dtype(kind):
    enc = encoder(kind)
    c = enc.check(VALUES[kind], 2)
    bad = c.float() if kind == "text" else c.long()
    for wrong in (c[:1], bad):
        with pytest.raises(FlowmatchError, match=f"{kind} conditions must be"):
            enc(wrong, 2)


@pytest.mark.parametrize("kind", ["text", "dict"])
def test_the_model_configs_text_sizes_build_the_text_encoder(kind):
    cfg = ModelConfig(
        condition=SPECS[kind].to_dict(), text_width=24, text_layers=3, text_heads=6, text_ff_mult=3
    )
    v = build_model(cfg, (2,))
    text = v.condition if kind == "text" else v.condition.parts["instruction"]
    layers = text.transformer.layers
    assert len(layers) == 3 and text.tokens.embedding_dim == 24
    assert all(la.self_attn.num_heads == 6 and la.linear1.out_features == 72 for la in layers)
    c = v.check_condition(VALUES[kind], 2)
    assert v(torch.zeros(2, 2), 0.5, c).shape == (2, 2)
    default = build_model(ModelConfig(condition=SPECS[kind].to_dict()), (2,))
    n_params = sum(p.numel() for p in default.parameters())
    assert n_params != sum(p.numel() for p in v.parameters())


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ({"width": 64, "heads": 3}, "3 heads must divide its width 64"),
        ({"layers": 0}, "layers must be an integer >= 1"),
        ({"width": 0}, "width must be an integer >= 1"),
        ({"ff_mult": 0}, "ff_mult must be an integer >= 1"),
    ],
)
def test_impossible_text_sizes_get_one_line(sizes, match):
    from flowmatch.models import TextSizes

    with pytest.raises(FlowmatchError, match=match) as info:
        TextSizes(**sizes)
    assert "\n" not in str(info.value)
