"""`flowmatch train --preset`: values saved, explicit flags win, resume keeps them."""

import dataclasses
import json

import pytest

from flowmatch import ModelConfig, TrainConfig, preset_config
from flowmatch.cli import main
from flowmatch.errors import FlowmatchError
from flowmatch.training.presets import PRESETS
from tests.cli.helpers import error_line

TINY = ["--steps", "12", "--batch-size", "32", "--depth", "1", "--log-every", "4",
        "--checkpoint-every", "6", "--warmup-steps", "2", "--threads", "1"]  # fmt: skip
OWN = {"steps", "batch_size", "depth", "log_every", "checkpoint_every", "warmup_steps"}


def saved_config(run) -> dict:
    cfg = json.loads((run / "config.json").read_text())["config"]
    return {**{k: v for k, v in cfg.items() if k != "model"}, **cfg["model"]}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_names_the_values_it_was_measured_with(name):
    # another default may change; a preset must not move with it
    defaults = {**TrainConfig().to_dict(), **dataclasses.asdict(ModelConfig())}
    for key in ("coupling", "ot_batch", "time_sampling", "width", "time_max_freq", "standardize"):
        assert key in PRESETS[name].values, key
    assert set(PRESETS[name].values) <= set(defaults)


def test_the_preset_is_saved_and_an_explicit_flag_overrides_it(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--preset", "few-step", "--data", "moons", "--out", str(out)]
    assert main([*argv, "--width", "24", *TINY]) == 0
    saved = saved_config(out)
    assert saved["preset"] == "few-step"
    for key, value in PRESETS["few-step"].values.items():
        if key not in OWN | {"width"}:
            assert saved[key] == value, key
    assert saved["width"] == 24 != PRESETS["few-step"].values["width"]
    assert saved["steps"] == 12


def test_resuming_a_preset_run_keeps_its_values(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--preset", "few-step", "--data", "moons", "--out", str(out), *TINY]
    assert main([*argv, "--width", "16", "--stop-after", "6"]) == 0
    before = saved_config(out)
    # the registry changes between the two commands: the run keeps its saved values
    changed = dataclasses.replace(PRESETS["few-step"], values={**before, "coupling": "sinkhorn"})
    monkeypatch.setitem(PRESETS, "few-step", changed)
    assert main(["train", "--resume", str(out)]) == 0
    assert "done: step 12/12" in capsys.readouterr().out
    assert saved_config(out) == before


def test_an_unknown_preset_is_one_line(tmp_path, capsys):
    assert main(["train", "--preset", "fast", "--data", "moons", "--out", str(tmp_path)]) == 2
    line = error_line(capsys)
    assert "--preset" in line and "few-step" in line
    with pytest.raises(FlowmatchError, match="unknown --preset 'fast'"):
        preset_config("fast")
    with pytest.raises(FlowmatchError, match="unknown --preset"):
        TrainConfig(preset="fast").validate()


def test_python_overrides_win_and_land_in_the_right_config():
    cfg = preset_config("density", data="8gaussians", width=32, lr=1e-3)
    assert (cfg.preset, cfg.model.width, cfg.lr) == ("density", 32, 1e-3)
    assert cfg.model.time_max_freq == PRESETS["density"].values["time_max_freq"]
    with pytest.raises(FlowmatchError, match="preset 'density'"):
        preset_config("density", widht=32)


def test_a_run_saved_before_presets_existed_loads_without_one():
    old = TrainConfig().to_dict()
    del old["preset"]
    assert TrainConfig.from_dict(old).preset == ""
