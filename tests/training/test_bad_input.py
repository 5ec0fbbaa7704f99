"""Bad options and crafted run folders: one line of FlowmatchError, and nothing written."""

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

import flowmatch
from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig
from flowmatch.training import TrainConfig, load_checkpoint, reflow, resume, train

TINY = TrainConfig(
    data="moons",
    steps=20,
    batch_size=32,
    model=ModelConfig(width=16, depth=1),
    checkpoint_every=10,
    log_every=5,
    warmup_steps=2,
    threads=1,
)


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and message, message
    return message


NAN, INF = float("nan"), float("inf")
BAD_OPTIONS = [  # (TrainConfig fields, ModelConfig fields, what the message names)
    ({"seed": -1}, {}, "--seed"),
    ({"seed": 2**63}, {}, "--seed"),
    ({"seed": True}, {}, "--seed"),
    ({"threads": 10**6}, {}, "--threads"),
    ({"threads": -1}, {}, "--threads"),
    ({"device": "meta"}, {}, "--device"),
    ({"device": "mps"}, {}, "--device"),
    ({"device": "tpu:7"}, {}, "--device"),
    ({"device": None}, {}, "--device"),
    ({"lr": NAN}, {}, "--lr"),
    ({"lr": INF}, {}, "--lr"),
    ({"lr": -1.0}, {}, "--lr"),
    ({"weight_decay": NAN}, {}, "--weight-decay"),
    ({"grad_clip": NAN}, {}, "--grad-clip"),
    ({"grad_clip": INF}, {}, "--grad-clip"),
    ({"ema_decay": NAN}, {}, "--ema-decay"),
    ({"cond_drop": NAN}, {}, "--cond-drop"),
    ({"text_word_dropout": NAN}, {}, "--text-word-dropout"),
    ({"text_word_dropout": 1.0}, {}, "--text-word-dropout"),
    ({"logit_normal_mean": NAN}, {}, "--logit-normal-mean"),
    ({"logit_normal_std": INF}, {}, "--logit-normal-std"),
    ({"min_lr_ratio": NAN}, {}, "--min-lr-ratio"),
    ({"holdout_fraction": 0.0}, {}, "--holdout-fraction"),
    ({"cnf_kinetic": INF}, {}, "--cnf-kinetic"),
    ({"steps": "10"}, {}, "--steps"),
    ({"batch_size": None}, {}, "--batch-size"),
    ({"standardize": "yes"}, {}, "--standardize"),
    ({"method": "bogus"}, {}, "--method"),
    ({"path": "bogus"}, {}, "--path"),
    ({"optimizer": "sgd"}, {}, "--optimizer"),
    ({}, {"input_scale": NAN}, "--input-scale"),
    ({}, {"input_scale": 1e9}, "--input-scale"),
    ({}, {"time_max_freq": INF}, "--time-max-freq"),
    ({}, {"width": 2.5}, "--width"),
    ({}, {"name": "bogus"}, "--model"),
    ({}, {"activation": "bogus"}, "--activation"),
    ({"batch_size": 10**9}, {}, "needs about"),  # memory, refused before allocating
    ({}, {"width": 10**6, "depth": 4}, "needs about"),
]


@pytest.mark.parametrize(("fields", "model", "named"), BAD_OPTIONS)
def test_bad_options_are_one_line_and_write_nothing(tmp_path, fields, model, named):
    cfg = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, **model), **fields)
    with pytest.raises(FlowmatchError) as exc_info:
        train(cfg, tmp_path / "run")
    assert named in one_line(exc_info)
    assert list(tmp_path.iterdir()) == []


def test_grad_clip_nan_does_not_disable_clipping():
    """NaN compared with 0 is False both ways: it used to slip past the check as "off"."""
    with pytest.raises(FlowmatchError, match="--grad-clip must be a finite number"):
        dataclasses.replace(TINY, grad_clip=NAN).validate()


def test_a_saved_run_from_a_bigger_machine_still_loads():
    cfg = dataclasses.replace(TINY, threads=10**3)
    with pytest.raises(FlowmatchError, match="--threads"):
        cfg.validate()  # not for a new run on this machine
    assert TrainConfig.from_dict(cfg.to_dict()).threads == 10**3


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("crafted") / "good"
    train(TINY, run, stop_after=10)
    return run


def edit_config(run, edit):
    record = json.loads((run / "config.json").read_text())
    edit(record)
    (run / "config.json").write_text(json.dumps(record))


def edit_checkpoint(run, edit_tensors=None, meta=None):
    """Rewrite the checkpoint with edited tensors, or ``meta`` as its metadata text."""
    path = run / "checkpoint.safetensors"
    tensors, old = load_checkpoint(path)
    if edit_tensors:
        edit_tensors(tensors)
    header = {"format": "flowmatch-checkpoint", "meta": json.dumps(old) if meta is None else meta}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=header)


def set_meta(text):
    return lambda run: edit_checkpoint(run, meta=text)


def with_meta(**fields):
    def edit(run):
        _, meta = load_checkpoint(run / "checkpoint.safetensors")
        edit_checkpoint(run, meta=json.dumps({**meta, **fields}))

    return edit


def weights(fn):
    """Apply ``fn`` to the first weight of both the raw and the EMA model."""

    def edit(tensors):
        for prefix in ("model.", "ema."):
            key = next(k for k in tensors if k.startswith(prefix) and k.endswith("weight"))
            tensors[key] = fn(tensors[key])

    return lambda run: edit_checkpoint(run, edit)


def config(**fields):
    return lambda run: edit_config(run, lambda r: r["config"].update(fields))


def model(**fields):
    return lambda run: edit_config(run, lambda r: r["config"]["model"].update(fields))


def data(**fields):
    return lambda run: edit_config(run, lambda r: r["data"].update(fields))


def record(**fields):
    return lambda run: edit_config(run, lambda r: r.update(fields))


def fill_nan(t):
    return torch.full_like(t, NAN)


CRAFTED = {
    "steps is a string": config(steps="20"),
    "lr is null": config(lr=None),
    "unknown method": config(method="diffusion"),
    "device meta": config(device="meta"),
    "threads absurd": config(threads=10**9),
    "config not an object": record(config=[1, 2]),
    "model not an object": config(model="mlp"),
    "width a string": model(width="16"),
    "width absurd": model(width=10**7, depth=10),
    "negative shape": data(shape=[-2]),
    "string shape": data(shape="2"),
    "float shape": data(shape=[2.5]),
    "absurd shape": data(shape=[10**12]),
    "NaN in mean": data(mean=[NAN, 0.0]),
    "zero std": data(std=[0.0, 1.0]),
    "data not an object": record(data=None),
    "metadata a list": set_meta("[1, 2]"),
    "metadata not JSON": set_meta("{step"),
    "step a string": with_meta(step="10"),
    "step a float": with_meta(step=10.5),
    "step negative": with_meta(step=-1),
    "param_groups not a list": with_meta(param_groups={"lr": 1}),
    "NaN weights": weights(fill_nan),
    "int32 weights": weights(lambda t: t.to(torch.int32)),
    "wrong shape weights": weights(lambda t: t[:1]),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_run_folders_are_one_line_on_load_and_resume(good_run, tmp_path, case):
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    CRAFTED[case](run)
    before = snapshot(run)
    for attempt in (lambda: flowmatch.load_run(run), lambda: resume(run)):
        with pytest.raises(FlowmatchError) as exc_info:
            attempt()
        one_line(exc_info)
        assert snapshot(run) == before, case


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    run = tmp_path_factory.mktemp("reflow") / "teacher"
    train(TINY, run)
    return run


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"n_pairs": 10**10}, "needs about"),
        ({"n_pairs": 0}, "number of pairs"),
        ({"overrides": {"lr": -1.0}}, "--lr"),
        ({"overrides": {"batch_size": 10**9}}, "needs about"),
        ({"overrides": {"bogus": 1}}, "bogus"),
        ({"seed": -1}, "seed"),
        ({"pairs_file": "pairs.npy"}, ".npz"),
    ],
)
def test_reflow_refuses_bad_input_before_writing_pairs(teacher, tmp_path, options, named):
    before = snapshot(teacher)
    with pytest.raises(FlowmatchError) as exc_info:
        reflow(teacher, tmp_path / "student", solver="rk4", steps=2, **options)
    assert named in one_line(exc_info)
    assert snapshot(teacher) == before
    assert not (tmp_path / "student").exists()


def test_a_npy_file_is_not_a_pairs_file(tmp_path):
    import numpy as np

    from flowmatch.training.pairs import load_pairs

    np.save(tmp_path / "pairs.npy", np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(FlowmatchError, match="single array") as exc_info:
        load_pairs(tmp_path / "pairs.npy")
    one_line(exc_info)
