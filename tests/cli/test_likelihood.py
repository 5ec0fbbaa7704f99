"""flowmatch logprob end to end, --method cnf from the command line, and the density plots."""

import numpy as np
import pytest
import torch

import flowmatch
from flowmatch.cli import main
from flowmatch.training.runs import load_run
from tests.cli.helpers import error_line

TINY = ["--steps", "40", "--batch-size", "64", "--width", "32", "--depth", "2",
        "--log-every", "10", "--checkpoint-every", "20", "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-lp") / "run"
    assert main(["train", "--data", "8gaussians", "--out", str(out), *TINY]) == 0
    return out


def test_logprob_prints_the_nll_and_writes_log_densities(run, tmp_path, capsys):
    points = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", points)
    out = tmp_path / "lp.npy"
    argv = ["logprob", str(run), "--data", str(tmp_path / "x.npy"), "--solver", "rk4",
            "--solver-steps", "10", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "NLL" in text and "±" in text and "bits/dim" in text and "divergence exact" in text
    log_p = np.load(out)
    assert log_p.shape == (30,) and np.isfinite(log_p).all()
    expected = flowmatch.load(run).log_prob(torch.from_numpy(points), solver="rk4", steps=10)
    np.testing.assert_allclose(log_p, expected.numpy(), rtol=1e-6, atol=1e-6)
    nll = float(text.split("NLL ")[1].split()[0])
    assert nll == pytest.approx(-log_p.mean(), abs=1e-4)


def test_logprob_on_a_builtin_with_hutchinson(run, capsys):
    argv = ["logprob", str(run), "--data", "8gaussians", "--n", "50", "--divergence",
            "hutchinson", "--probes", "3", "--solver", "rk4", "--solver-steps", "5"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "50 held-out points of 8gaussians" in text and "3 rademacher probes" in text
    assert "Hutchinson part ±" in text


def test_cnf_trains_resumes_and_scores_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cnf"
    args = ["train", "--data", "moons", "--method", "cnf", "--out", str(out),
            "--cnf-steps", "2", "--cnf-kinetic", "0.1", "--steps", "6", *TINY[2:],
            "--time-max-freq", "30", "--stop-after", "3"]  # fmt: skip
    assert main(args) == 0
    assert main(["train", "--resume", str(out)]) == 0
    assert "step 6/6" in capsys.readouterr().out
    assert flowmatch.load(out).velocity.time_embed.freqs.max().item() == pytest.approx(30.0)
    argv = ["logprob", str(out), "--data", "moons", "--n", "20", "--solver", "rk4",
            "--solver-steps", "4"]  # fmt: skip
    assert main(argv) == 0


def test_logprob_flags_map_to_the_log_prob_options(run, tmp_path, capsys):
    points = np.random.default_rng(1).normal(size=(20, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", points)
    out = tmp_path / "lp.npy"
    argv = ["logprob", str(run), "--data", str(tmp_path / "x.npy"), "--solver", "rk38",
            "--solver-steps", "3", "--divergence-nodes", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "at 2 Gauss-Legendre nodes per step" in capsys.readouterr().out
    options = {"solver": "rk38", "steps": 3, "divergence_nodes": 2}
    expected = flowmatch.load(run).log_prob(torch.from_numpy(points), **options)
    np.testing.assert_allclose(np.load(out), expected.numpy(), rtol=1e-6, atol=1e-6)
    out2 = tmp_path / "lp2.npy"
    argv = [
        "logprob",
        str(run),
        "--data",
        str(tmp_path / "x.npy"),
        "--solver",
        "bosh3",
        "--atol",
        "1e-3",
        "--rtol",
        "1e-3",
        "--error-norm",
        "batch",
        "--out",
        str(out2),
    ]
    assert main(argv) == 0
    options = {"solver": "bosh3", "atol": 1e-3, "rtol": 1e-3, "error_norm": "batch"}
    expected = flowmatch.load(run).log_prob(torch.from_numpy(points), **options)
    np.testing.assert_allclose(np.load(out2), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_logprob_help_lists_the_registries(capsys):
    from flowmatch.solvers import ERROR_NORMS, SOLVERS

    assert main(["logprob", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in [*SOLVERS, *ERROR_NORMS]:
        assert name in text
    assert "--divergence-nodes" in text and "D <= 64" in text


def test_plot_adds_density_heatmaps_for_2d_runs(run, tmp_path, capsys):
    out = tmp_path / "figs"
    argv = ["plot", str(run), "--n", "100", "--out", str(out), "--solver", "rk4",
            "--solver-steps", "4"]  # fmt: skip
    assert main(argv) == 0
    names = {p.name for p in out.iterdir()}
    assert {"density.png", "log_density.png"} <= names


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--probes", "0"], "--probes must be an integer >= 1"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
        (["--solver-steps", "0"], "--solver-steps must be an integer >= 1"),
        (["--divergence", "trace"], "invalid choice: 'trace'"),
        (["--n", "5"], "--n picks held-out points of the run"),
        (["--dequantize", "yes"], "needs a run trained on discrete data"),
        (["--dequant-samples", "2"], "needs grid-valued points of a discrete data set"),
        (["--out", "lp.txt"], "--out must end in .npy"),
        (["--divergence-nodes", "-1"], "--divergence-nodes must be an integer >= 0"),
        (["--divergence-nodes", "2"], "needs a fixed-grid --solver"),
        (["--error-norm", "max"], "invalid choice: 'max'"),
    ],
)
def test_logprob_rejects_bad_options(run, tmp_path, capsys, extra, message):
    np.save(tmp_path / "x.npy", np.zeros((4, 2), np.float32))
    assert main(["logprob", str(run), "--data", str(tmp_path / "x.npy"), *extra]) == 2
    assert message in error_line(capsys)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (np.zeros((4, 3), np.float32), "3 features per sample but 2 are expected"),
        (np.array([[0.0, np.nan]], np.float32), "NaN"),
    ],
)
def test_logprob_rejects_bad_data(run, tmp_path, capsys, points, message):
    np.save(tmp_path / "x.npy", points)
    assert main(["logprob", str(run), "--data", str(tmp_path / "x.npy")]) == 2
    assert message in error_line(capsys)


def test_logprob_rejects_missing_inputs(run, tmp_path, capsys):
    assert main(["logprob", str(run), "--data", str(tmp_path / "none.npy")]) == 2
    assert "neither a built-in data set" in error_line(capsys)
    assert main(["logprob", str(tmp_path / "norun"), "--data", "moons"]) == 2
    assert "does not exist" in error_line(capsys)
    existing = tmp_path / "lp.npy"
    existing.write_bytes(b"")
    assert main(["logprob", str(run), "--data", "moons", "--out", str(existing)]) == 2
    assert "already exists" in error_line(capsys)


def test_logprob_dequantizes_discrete_data_for_bits_per_dim(tmp_path, capsys):
    from flowmatch.data.digits import digit_levels

    out = tmp_path / "digits"
    args = ["train", "--data", "digits", "--out", str(out), "--steps", "3", "--batch-size",
            "16", "--width", "16", "--depth", "1", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    levels = digit_levels()["test"][:5].numpy()  # raw grey levels 0..16
    np.save(tmp_path / "levels.npy", levels)
    common = ["logprob", str(out), "--solver", "rk4", "--solver-steps", "2", "--probes", "2"]
    capsys.readouterr()
    assert main([*common, "--data", str(tmp_path / "levels.npy")]) == 0
    text = capsys.readouterr().out
    assert "(dequantized)" in text and "bin width 1: a bound on the discrete NLL" in text
    assert main([*common, "--data", str(tmp_path / "levels.npy"), "--dequantize", "no"]) == 0
    assert "(dequantized)" not in capsys.readouterr().out
    np.save(tmp_path / "off.npy", levels + 0.5)
    assert main([*common, "--data", str(tmp_path / "off.npy"), "--dequantize", "yes"]) == 2
    assert "already continuous" in error_line(capsys)
    assert main([*common, "--data", "digits", "--n", "4"]) == 0
    assert "4 held-out points of digits (dequantized)" in capsys.readouterr().out


def test_a_logit_run_keeps_its_transform_and_scores_bounded_data(tmp_path, capsys):
    out = tmp_path / "digits-logit"
    args = ["train", "--data", "digits", "--out", str(out), "--steps", "4", "--batch-size",
            "16", "--width", "16", "--depth", "1", "--threads", "1", "--logit", "0.01"]  # fmt: skip
    assert main(args) == 0
    flow = flowmatch.load(out)
    assert flow.logit is not None and flow.logit.alpha == 0.01 and flow.logit.high == 17.0
    lo, hi = flow.logit.domain
    x = flow.sample(8, solver="euler", steps=4, seed=0)
    assert bool(((x > lo) & (x < hi)).all())
    capsys.readouterr()
    score = ["logprob", str(out), "--data", "digits", "--n", "4", "--solver", "rk4",
             "--solver-steps", "2"]  # fmt: skip
    assert main([*score, "--probes", "2"]) == 0
    assert "bits/dim" in capsys.readouterr().out
    assert main([*score, "--divergence", "exact", "--dequant-samples", "3"]) == 0
    text = capsys.readouterr().out
    assert "(dequantized 3 times each)" in text and "mean density of 3 dequantizations" in text
    hutchinson = ["--divergence", "hutchinson", "--probes", "2"]
    assert main([*score, *hutchinson, "--dequant-samples", "3"]) == 2
    assert "add --divergence exact" in error_line(capsys)
    assert main([*score, "--dequant-samples", "0"]) == 2
    assert "--dequant-samples must be an integer >= 1" in error_line(capsys)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "moons", "--logit", "0.01"], "--logit needs data with a known bounded range"),
        (["--data", "digits", "--logit", "0.7"], "--logit must be 0 (off) or in (0, 0.5)"),
        (["--data", "digits", "--logit", "0.01", "--method", "planar"], "not planar"),
    ],
)
def test_impossible_logit_options_are_rejected(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["train", "--out", str(out), "--steps", "2", *extra]) == 2
    assert message in error_line(capsys)
    assert not out.exists()


def test_fourier_input_features_and_mixed_times_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cb-fourier"
    args = ["train", "--data", "checkerboard", "--out", str(out), "--input-features", "8",
            "--input-scale", "4", "--time-sampling", "logit-normal", "--logit-normal-mean", "1",
            "--time-uniform-share", "0.2", *TINY]  # fmt: skip
    assert main([*args[:-2], "--stop-after", "20"]) == 0
    assert main(["train", "--resume", str(out)]) == 0
    freqs = flowmatch.load(out).velocity.input_embed.freqs
    assert freqs.shape == (2, 8) and freqs.std().item() > 1.0  # scale 4, not the default 1
    _, info = load_run(out)
    assert info.config.time_uniform_share == 0.2 and info.config.model.input_features == 8
    capsys.readouterr()
    argv = ["logprob", str(out), "--data", "checkerboard", "--n", "20", "--solver", "rk4",
            "--solver-steps", "4"]  # fmt: skip
    assert main(argv) == 0
    assert "bits/dim" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input-features", "-1"], "--input-features must be >= 0"),
        (["--input-features", "4", "--input-scale", "0"], "--input-scale"),
        (["--time-uniform-share", "2"], "--time-uniform-share must be in [0, 1]"),
    ],
)
def test_impossible_feature_and_time_options_are_rejected(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["train", "--out", str(out), "--data", "moons", "--steps", "2", *extra]) == 2
    assert message in error_line(capsys)
    assert not out.exists()
