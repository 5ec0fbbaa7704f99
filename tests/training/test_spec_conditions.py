"""A data set with dict conditions (an image and an instruction) trains, saves and samples."""

import json

import pytest
import torch

import flowmatch
from flowmatch.data import DATASETS, ArrayDataset
from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.text import Vocabulary
from tests.training.resume_check import assert_resume_is_exact

INSTRUCTIONS = ["go left", "go right", "stay"]


def camera_and_instruction() -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    spec = ConditionSpec.combine(
        {
            "camera": ConditionSpec.image((3, 8, 8)),
            "instruction": ConditionSpec.text(Vocabulary.build(INSTRUCTIONS), 4),
        }
    )
    n = 64
    said = [INSTRUCTIONS[i % 3] for i in range(n)]
    cond = spec.encode({"camera": torch.rand(n, 3, 8, 8, generator=g), "instruction": said}, n)
    return ArrayDataset(torch.randn(n, 2, generator=g), "camera-demo", cond=cond, condition=spec)


def test_a_dict_condition_is_saved_with_the_run_and_sampled(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "camera-demo", camera_and_instruction)
    model = flowmatch.ModelConfig(width=16, depth=1, cond_embed_dim=8)
    cfg = flowmatch.TrainConfig(data="camera-demo", model=model, steps=3, batch_size=8)
    flowmatch.train(cfg, tmp_path / "run")
    flow = flowmatch.load(tmp_path / "run")
    spec = flow.velocity.condition.spec
    assert spec == camera_and_instruction().condition  # rebuilt from the run's config
    cond = {"camera": torch.rand(3, 8, 8), "instruction": "go left please"}  # 'please': <unk>
    x = flow.sample(5, cond=cond, guidance=2.0, steps=2, seed=0)
    assert x.shape == (5, 2) and torch.isfinite(x).all()
    with pytest.raises(flowmatch.FlowmatchError, match="lacks part 'camera'"):
        flow.sample(5, cond={"instruction": "stay"}, steps=2)
    bad = flowmatch.TrainConfig(data="camera-demo", model=model, steps=3, coupling="ot")
    with pytest.raises(flowmatch.FlowmatchError, match="use --coupling independent"):
        flowmatch.train(bad, tmp_path / "ot")


def test_film_is_saved_with_the_run_and_old_runs_load_without_it(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "camera-demo", camera_and_instruction)
    for film in (True, False):
        model = flowmatch.ModelConfig(width=16, depth=1, cond_embed_dim=8, film=film)
        cfg = flowmatch.TrainConfig(data="camera-demo", model=model, steps=3, batch_size=8)
        flowmatch.train(cfg, tmp_path / f"film-{film}")
    flow = flowmatch.load(tmp_path / "film-True")
    assert flow.velocity.condition.film is not None  # rebuilt with its modulation
    cond = {"camera": torch.rand(3, 8, 8), "instruction": "go left"}
    assert torch.isfinite(flow.sample(4, cond=cond, steps=2, seed=0)).all()
    old = tmp_path / "film-False" / "config.json"  # a run saved before the flag existed
    record = json.loads(old.read_text())
    del record["config"]["model"]["film"]
    old.write_text(json.dumps(record))
    assert flowmatch.load(tmp_path / "film-False").velocity.condition.film is None


def test_film_works_with_the_mlp_model_only():
    model = flowmatch.ModelConfig(name="unet", film=True)
    with pytest.raises(flowmatch.FlowmatchError, match="--film work with --model mlp only"):
        flowmatch.TrainConfig(data="mnist", model=model).validate()


def test_text_encoder_sizes_are_saved_with_the_run_and_old_runs_keep_theirs(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "camera-demo", camera_and_instruction)
    for name, sizes in (("small", {"text_width": 16, "text_layers": 1, "text_heads": 2}),
                        ("default", {})):  # fmt: skip
        model = flowmatch.ModelConfig(width=16, depth=1, cond_embed_dim=8, **sizes)
        cfg = flowmatch.TrainConfig(data="camera-demo", model=model, steps=3, batch_size=8)
        flowmatch.train(cfg, tmp_path / name)
    text = flowmatch.load(tmp_path / "small").velocity.condition.parts["instruction"]
    assert (text.sizes.width, text.sizes.layers, text.sizes.heads) == (16, 1, 2)
    assert len(text.transformer.layers) == 1 and text.tokens.embedding_dim == 16
    cond = {"camera": torch.rand(3, 8, 8), "instruction": "go left"}
    before = flowmatch.load(tmp_path / "default").sample(4, cond=cond, steps=2, seed=0)
    old = tmp_path / "default" / "config.json"  # a run saved before the sizes were fields
    record = json.loads(old.read_text())
    for name in ("text_width", "text_layers", "text_heads", "text_ff_mult"):
        del record["config"]["model"][name]
    old.write_text(json.dumps(record))
    flow = flowmatch.load(tmp_path / "default")  # the same weights load into the same shapes
    assert flow.velocity.condition.parts["instruction"].sizes == flowmatch.models.TextSizes()
    assert torch.equal(flow.sample(4, cond=cond, steps=2, seed=0), before)


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ({"text_heads": 3}, "--text-heads 3 does not divide --text-width 64 .*use one of 1, 2, 4"),
        ({"text_layers": 0}, "--text-layers must be an integer >= 1"),
        ({"text_width": 0}, "--text-width must be an integer >= 1"),
        ({"text_ff_mult": -1}, "--text-ff-mult must be an integer >= 1"),
    ],
)
def test_impossible_text_encoder_sizes_are_refused_in_one_line(sizes, match, tmp_path):
    cfg = flowmatch.TrainConfig(data="digits-captions", model=flowmatch.ModelConfig(**sizes))
    with pytest.raises(flowmatch.FlowmatchError, match=match) as info:
        flowmatch.train(cfg, tmp_path / "run")
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


def test_word_dropout_is_saved_applied_in_training_only_and_old_runs_load_without_it(
    tmp_path, monkeypatch
):
    import flowmatch.data.conditions as conditions

    monkeypatch.setitem(DATASETS, "camera-demo", camera_and_instruction)
    calls = []
    real = conditions.drop_words

    def spy(ids, p, generator):
        calls.append(p)
        return real(ids, p, generator)

    monkeypatch.setattr(conditions, "drop_words", spy)
    model = flowmatch.ModelConfig(width=16, depth=1, cond_embed_dim=8)
    for p in (0.0, 0.25):
        cfg = flowmatch.TrainConfig(
            data="camera-demo", model=model, steps=3, batch_size=8, text_word_dropout=p
        )
        flowmatch.train(cfg, tmp_path / f"p{p}")
    assert calls == [0.25] * 3  # once a step, and never at p = 0
    flow, info = flowmatch.load_run(tmp_path / "p0.25")
    assert info.config.text_word_dropout == 0.25

    def refuse(*args):
        raise AssertionError("words dropped at sampling")

    monkeypatch.setattr(conditions, "drop_words", refuse)
    cond = {"camera": torch.rand(3, 8, 8), "instruction": "go left"}
    assert torch.isfinite(flow.sample(4, cond=cond, steps=2, seed=0)).all()
    old = tmp_path / "p0.0" / "config.json"  # a run saved before the option existed
    record = json.loads(old.read_text())
    del record["config"]["text_word_dropout"]
    old.write_text(json.dumps(record))
    assert flowmatch.load_run(tmp_path / "p0.0")[1].config.text_word_dropout == 0.0


def test_word_dropout_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "camera-demo", camera_and_instruction)
    model = flowmatch.ModelConfig(width=16, depth=1, cond_embed_dim=8)
    cfg = flowmatch.TrainConfig(
        data="camera-demo", model=model, steps=6, batch_size=8, text_word_dropout=0.5,
        checkpoint_every=2, log_every=2,
    )  # fmt: skip
    assert_resume_is_exact(cfg, tmp_path, stop_after=3)


@pytest.mark.parametrize(
    ("data", "p", "match"),
    [
        ("camera-demo", 1.0, r"--text-word-dropout must be in \[0, 1\)"),
        ("camera-demo", -0.5, r"--text-word-dropout must be in \[0, 1\)"),
        ("moons", 0.1, "drops words of text conditions, but moons has no conditions"),
    ],
)
def test_bad_word_dropout_is_refused_in_one_line(tmp_path, monkeypatch, data, p, match):
    monkeypatch.setitem(DATASETS, "camera-demo", camera_and_instruction)
    model = flowmatch.ModelConfig(width=16, depth=1, cond_embed_dim=8)
    cfg = flowmatch.TrainConfig(data=data, model=model, steps=2, text_word_dropout=p)
    with pytest.raises(flowmatch.FlowmatchError, match=match) as info:
        flowmatch.train(cfg, tmp_path / "run")
    assert "\n" not in str(info.value)
