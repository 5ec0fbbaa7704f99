"""The training state's record and the configs of train(): what is written, what is kept."""

import copy
import dataclasses
import json

import numpy as np
import torch

from flowmatch.data import DATASETS, ArrayDataset
from flowmatch.models import ModelConfig
from flowmatch.training import TrainConfig, load_checkpoint, train
from flowmatch.training.pairs import save_pairs

TINY = TrainConfig(
    data="moons",
    steps=20,
    batch_size=32,
    model=ModelConfig(width=16, depth=1),
    checkpoint_every=10,
    log_every=10,
    warmup_steps=2,
    threads=1,
)


def test_train_leaves_the_callers_config_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    np.save("data.npy", torch.randn(500, 2, generator=g).numpy())
    np.save("noise.npy", torch.randn(500, 2, generator=g).numpy())
    save_pairs("pairs.npz", torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g))
    train(dataclasses.replace(TINY, steps=2, source="noise.npy"), "teacher")
    relative = dataclasses.replace(
        TINY, data="data.npy", source="noise.npy", pairs="pairs.npz", init_from="teacher"
    )
    x, labels = torch.randn(300, 2, generator=g), torch.arange(300) % 3
    monkeypatch.setitem(DATASETS, "labelled", lambda: ArrayDataset(x, "labelled", cond=labels))
    conditional = dataclasses.replace(TINY, data="labelled")
    for i, cfg in enumerate((relative, conditional)):
        before = copy.deepcopy(cfg)
        train(cfg, f"run{i}")
        assert cfg == before
    saved = json.loads((tmp_path / "run0" / "config.json").read_text())["config"]
    for name, file in (("data", "data.npy"), ("source", "noise.npy"), ("pairs", "pairs.npz"),
                       ("init_from", "teacher")):  # fmt: skip
        assert saved[name] == str(tmp_path / file), name
    saved = json.loads((tmp_path / "run1" / "config.json").read_text())["config"]
    assert saved["model"]["num_classes"] == 3 and conditional.model.num_classes == 0


def test_the_checkpoint_keeps_the_record_of_earlier_releases(tmp_path):
    """Run folders of earlier releases resume: the keys of the record are the same."""
    cfg = dataclasses.replace(TINY, coupling="ot", ot_batch=8, steps=20, checkpoint_every=20)
    train(cfg, tmp_path / "run", stop_after=20)
    tensors, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    kinds = {k.split(".")[0] for k in tensors}
    assert kinds == {"model", "ema", "optim", "rng"}
    assert {k for k in tensors if k.startswith("rng.")} == {"rng.train", "rng.chunk"}
    assert set(meta) == {"step", "ema_updates", "param_groups", "chunk_start", "loss"}
    assert meta["step"] == 20 and meta["chunk_start"] == 16  # chunks of 16 steps
