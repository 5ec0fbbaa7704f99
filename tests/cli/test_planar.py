"""The command line with planar flows: train by likelihood, use the run, fit an energy."""

import json

import numpy as np
import pytest
import torch

from flowmatch.cli import main
from tests.cli.helpers import error_line

TINY = ["--method", "planar", "--layers", "4", "--steps", "30", "--batch-size", "64",
        "--log-every", "10", "--checkpoint-every", "15"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("planar") / "run"
    assert main(["train", "--data", "8gaussians", "--out", str(out), *TINY]) == 0
    return out


def test_train_records_the_planar_config(run):
    record = json.loads((run / "config.json").read_text())
    cfg = record["config"]
    assert cfg["method"] == "planar" and cfg["layers"] == 4
    assert cfg["planar_activation"] == "tanh" and cfg["planar_affine"] is True


def test_sample_then_invert_returns_the_noise(run, tmp_path, capsys):
    samples, noise = tmp_path / "s.npy", tmp_path / "z.npy"
    assert main(["sample", str(run), "--n", "64", "--seed", "1", "--out", str(samples)]) == 0
    assert "5 layers" in capsys.readouterr().out  # affine + 4 planar, no ODE solver
    assert main(["invert", str(run), "--data", str(samples), "--out", str(noise)]) == 0
    expected = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_allclose(np.load(noise), expected, atol=1e-4)


def test_eval_has_one_row_for_a_discrete_flow(run, capsys):
    assert main(["eval", str(run), "--n", "200"]) == 0
    out = capsys.readouterr().out
    assert "layers" in out and "data floor" in out and "dopri5" not in out


def test_eval_rows_of_solvers_are_refused_for_a_discrete_flow(run, capsys):
    assert main(["eval", str(run), "--n", "50", "--rows", "euler:4", "--no-curve"]) == 2
    assert "no ODE to solve; leave --rows out" in error_line(capsys)


def test_plot_writes_the_layer_by_layer_figures(run, tmp_path):
    out = tmp_path / "figs"
    assert main(["plot", str(run), "--n", "200", "--out", str(out)]) == 0
    assert {"samples.png", "trajectories.png", "path.png", "path.gif"} <= {
        p.name for p in out.iterdir()
    }


def test_logprob_command(run, tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32))
    out = tmp_path / "lp.npy"
    assert main(["logprob", str(run), "--data", str(data), "--out", str(out)]) == 0
    assert np.isfinite(np.load(out)).all()


def test_resume_a_planar_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "moons", "--out", str(out), *TINY, "--stop-after", "12"]) == 0
    assert main(["train", "--resume", str(out)]) == 0
    assert "done: step 30/30" in capsys.readouterr().out


def test_fit_energy_writes_a_usable_run(tmp_path, capsys):
    out = tmp_path / "u1"
    argv = ["fit-energy", "U1", "--layers", "3", "--steps", "20", "--grid", "60", "--n", "500",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "KL(q || p)" in printed and "ESS" in printed and "[-4, 4, -4, 4]" in printed
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "checkpoint.safetensors", "energy_fit.json", "density.png"} <= names
    report = json.loads((out / "energy_fit.json").read_text())
    assert report["box"] == [-4.0, 4.0, -4.0, 4.0] and 0 <= report["ess"] <= 1
    samples = tmp_path / "s.npy"
    assert main(["sample", str(out), "--n", "10", "--out", str(samples)]) == 0
    assert np.load(samples).shape == (10, 2)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", *TINY, "--layers", "0"], "--layers must be an integer >= 1"),
        (["train", *TINY, "--planar-activation", "relu"], "invalid choice: 'relu'"),
        (["fit-energy", "U7"], "invalid choice: 'U7'"),
        (["fit-energy", "U1", "--steps", "0"], "steps must be an integer >= 1"),
        (["fit-energy", "U1", "--box", "1", "0", "0", "1"], "min < max"),
    ],
)
def test_bad_planar_input_is_one_line(argv, fragment, tmp_path, capsys):
    argv = [*argv, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert fragment in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_fit_energy_refuses_an_existing_run(run, capsys):
    assert main(["fit-energy", "U1", "--steps", "1", "--out", str(run)]) == 2
    assert "already holds a run" in error_line(capsys)
