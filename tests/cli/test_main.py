"""The command line end to end on a tiny run, and every kind of bad input."""

import importlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from flowmatch.cli import demo, main
from flowmatch.cli.launch import LAUNCHED_ENV
from flowmatch.errors import FlowmatchError
from flowmatch.training import TrainingInterrupted
from flowmatch.training.distributed import PeerLost
from tests.cli.helpers import error_line

cli_main = importlib.import_module("flowmatch.cli.main")  # the module: the package exports main()

TINY = ["--steps", "40", "--batch-size", "64", "--width", "32", "--depth", "2",
        "--log-every", "10", "--checkpoint-every", "20"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--data", "8gaussians", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_complete_run(run):
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "checkpoint.safetensors", "metrics.jsonl"} <= names
    record = json.loads((run / "config.json").read_text())
    assert record["format"] == "flowmatch-run"
    assert record["time_convention"].startswith("t=0 is noise")
    assert record["config"]["steps"] == 40 and record["config"]["model"]["width"] == 32
    assert len(record["data"]["mean"]) == 2
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_sample_invert_round_trip(run, tmp_path, capsys):
    samples = tmp_path / "s.npy"
    assert main(["sample", str(run), "--n", "64", "--solver", "rk4", "--solver-steps", "20",
                 "--seed", "1", "--out", str(samples)]) == 0  # fmt: skip
    x = np.load(samples)
    assert x.shape == (64, 2) and np.isfinite(x).all()
    noise = tmp_path / "z.npy"
    assert main(["invert", str(run), "--data", str(samples), "--solver", "rk4",
                 "--solver-steps", "20", "--out", str(noise)]) == 0  # fmt: skip
    z = np.load(noise)
    expected = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_allclose(z, expected, atol=1e-3)


def test_the_deprecated_steps_spelling_still_sets_the_solver_steps(run, tmp_path, capsys):
    old, new = tmp_path / "old.npy", tmp_path / "new.npy"
    argv = ["sample", str(run), "--n", "8", "--solver", "euler", "--seed", "3"]
    assert main([*argv, "--steps", "3", "--out", str(old)]) == 0
    out, err = capsys.readouterr()
    assert "NFE 3" in out
    assert err.strip().splitlines() == [
        "flowmatch: warning: --steps of 'flowmatch sample' is deprecated and will be removed; "
        "use --solver-steps (--steps counts optimizer steps in train)"
    ]
    assert main([*argv, "--solver-steps", "3", "--out", str(new)]) == 0
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(np.load(old), np.load(new))


def test_adaptive_sampling_reports_nfe(run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "--n", "10", "--solver", "dopri5", "--out", str(out)]) == 0
    assert "NFE" in capsys.readouterr().out


def test_eval_prints_a_table_with_the_floor(run, tmp_path, capsys):
    js = tmp_path / "eval.json"
    assert main(["eval", str(run), "--n", "200", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "data floor" in out and "dopri5" in out
    table = json.loads(js.read_text())
    assert {r["nfe"] for r in table["rows"]} >= {1, 2, 4, 8, 100}
    assert all(r["w2"] > 0 for r in table["rows"]) and table["floor"]["w2"] > 0


def test_eval_draws_average_the_model_and_the_floor_alike(run, tmp_path, capsys):
    one, three = tmp_path / "one.json", tmp_path / "three.json"
    assert main(["eval", str(run), "--n", "100", "--no-curve", "--json", str(one)]) == 0
    argv = ["eval", str(run), "--n", "100", "--draws", "3", "--json", str(three)]
    assert main(argv) == 0
    assert "mean of 3 independent draws" in capsys.readouterr().out
    single, mean = json.loads(one.read_text()), json.loads(three.read_text())
    assert "draws" not in single and "w2_draws" not in single["floor"]
    assert mean["draws"] == 3
    # the floor is averaged exactly as every row: the same draws, the same count
    for part in [mean["floor"], *mean["rows"], *mean["curve"]["rows"]]:
        assert len(part["w2_draws"]) == 3 and len(set(part["w2_draws"])) == 3
        assert part["w2"] == pytest.approx(np.mean(part["w2_draws"]))
        assert part["w2_sd"] == pytest.approx(np.std(part["w2_draws"], ddof=1))
    # the first draw is the single-draw table
    assert mean["floor"]["w2_draws"][0] == single["floor"]["w2"]
    assert mean["floor"]["mmd"] == single["floor"]["mmd"]
    for r1, r3 in zip(single["rows"], mean["rows"], strict=True):
        assert r3["w2_draws"][0] == r1["w2"] and r3["mmd"] == r1["mmd"]
    # the demo's lines: the ratio of the means, with its standard error
    lines = demo.result_lines(mean)
    heun = next(r for r in mean["rows"] if (r["solver"], r["steps"]) == ("heun", 2))
    assert len(lines) == 2 and f"{heun['w2'] / mean['floor']['w2']:.2f}x +- " in lines[1]


def test_eval_rows_picks_the_settings_and_averages_them_like_the_full_table(run, tmp_path):
    full, few = tmp_path / "full.json", tmp_path / "few.json"
    assert main(["eval", str(run), "--n", "100", "--draws", "2", "--no-curve",
                 "--json", str(full)]) == 0  # fmt: skip
    assert main(["eval", str(run), "--n", "100", "--draws", "2", "--rows", "heun:2,euler:100",
                 "--no-curve", "--json", str(few)]) == 0  # fmt: skip
    full, few = json.loads(full.read_text()), json.loads(few.read_text())
    assert [(r["solver"], r["steps"]) for r in few["rows"]] == [("heun", 2), ("euler", 100)]
    same = {(r["solver"], r["steps"]): r["w2_draws"] for r in full["rows"]}
    for r in few["rows"]:  # the same draws, so the same values as in the full table
        assert r["w2_draws"] == same[r["solver"], r["steps"]]
    assert few["floor"]["w2_draws"] == full["floor"]["w2_draws"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rows", "euler:4"], "add dopri5 to --rows, or pass --no-curve"),
        (["--rows", "euler", "--no-curve"], "'euler' needs its steps"),
        (["--rows", "midpoint:2,rk5:2", "--no-curve"], "unknown solver in --rows 'rk5'"),
    ],
)
def test_eval_rows_that_cannot_be_evaluated_are_refused(run, tmp_path, capsys, extra, message):
    js = tmp_path / "e.json"
    assert main(["eval", str(run), "--n", "50", *extra, "--json", str(js)]) == 2
    assert message in error_line(capsys) and not js.exists()


@pytest.mark.parametrize(
    "extra",
    [["--draws", "0"], ["--draws", "1000000000"], ["--oracle", "--oracle-bins", "100000000000"]],
)
def test_eval_refuses_no_draw_and_counts_that_would_never_end(run, capsys, extra):
    assert main(["eval", str(run), *extra]) == 2
    assert extra[-2] in error_line(capsys)


def test_eval_with_a_data_file(run, tmp_path, capsys):
    f = tmp_path / "held.csv"
    np.savetxt(f, np.random.default_rng(0).normal(size=(100, 2)), delimiter=",", header="a,b")
    assert main(["eval", str(run), "--data", str(f)]) == 0


def test_plot_writes_figures_and_a_gif(run, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(run), "--n", "200", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"samples.png", "trajectories.png", "path.png", "loss.png", "path.gif"} <= names


def test_resume_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", "moons", "--out", str(out), *TINY]
    assert main([*args, "--stop-after", "15"]) == 0
    assert "resume" in capsys.readouterr().out
    assert main(["train", "--resume", str(out)]) == 0
    assert "done: step 40/40" in capsys.readouterr().out
    # the log was continued, not duplicated
    steps = [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").open()]
    assert steps == sorted(set(steps))


# -- bad input: one line, exit 2, nothing lost ----------------------------------------------
def bad_files(tmp_path):
    files = {}
    (tmp_path / "malformed.csv").write_text("1,2\n3\n")
    files["malformed.csv"] = "row"
    (tmp_path / "words.csv").write_text("a,b\n1,2\n3,cat\n")
    files["words.csv"] = "not a number"
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    files["nan.npy"] = "NaN"
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    files["empty.npy"] = "empty"
    (tmp_path / "garbage.npy").write_bytes(b"\x00not numpy")
    files["garbage.npy"] = "garbage.npy"
    files["missing.npy"] = "missing.npy"
    return files


@pytest.mark.parametrize("verb", ["train", "invert"])
def test_bad_data_files_are_rejected(verb, run, tmp_path, capsys):
    for name, fragment in bad_files(tmp_path).items():
        path = tmp_path / name
        if verb == "train":
            argv = ["train", "--data", str(path), "--out", str(tmp_path / f"r-{name}"), *TINY]
        else:
            argv = ["invert", str(run), "--data", str(path), "--out", str(tmp_path / "z.npy")]
        assert main(argv) == 2, name
        line = error_line(capsys)
        assert fragment.lower() in line.lower(), line
        assert not (tmp_path / f"r-{name}").exists() and not (tmp_path / "z.npy").exists()


def test_dimension_mismatch_is_rejected(run, tmp_path, capsys):
    f = tmp_path / "three.npy"
    np.save(f, np.zeros((5, 3)))
    assert main(["invert", str(run), "--data", str(f), "--out", str(tmp_path / "z.npy")]) == 2
    assert "3 features" in error_line(capsys)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--data", "moons", "--steps", "0"], "--steps"),
        (["train", "--data", "moons", "--lr", "-1"], "--lr"),
        (["train", "--data", "moons", "--ema-decay", "1.5"], "--ema-decay"),
        (["train", "--data", "moons", "--solver", "rk4"], "unrecognized"),
        (["train", "--data", "moons", "--path", "spiral"], "invalid choice"),
        (["train", "--data", "moons", "--device", "cuda:7"], "cuda"),
        (["train", "--data", "nosuchset"], "unknown dataset"),
    ],
)
def test_impossible_train_options(argv, fragment, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*argv, "--out", str(out)]) == 2
    assert fragment in error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--solver", "magic"], "invalid choice"),
        (["--solver-steps", "0"], "--solver-steps must be an integer >= 1"),
        (["--n", "0"], "--n"),
        (["--solver", "dopri5", "--atol", "-1"], "atol"),
    ],
)
def test_impossible_sample_options(argv, fragment, run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "--out", str(out), *argv]) == 2
    assert fragment in error_line(capsys)
    assert not out.exists()


def test_existing_outputs_are_never_overwritten(run, tmp_path, capsys):
    before = (run / "checkpoint.safetensors").read_bytes()
    assert main(["train", "--data", "moons", "--out", str(run), *TINY]) == 2
    assert "already holds a run" in error_line(capsys)
    assert (run / "checkpoint.safetensors").read_bytes() == before
    out = tmp_path / "s.npy"
    out.write_bytes(b"precious")
    assert main(["sample", str(run), "--out", str(out)]) == 2
    assert "already exists" in error_line(capsys)
    assert out.read_bytes() == b"precious"


def test_resume_rejects_config_flags(run, capsys):
    assert main(["train", "--resume", str(run), "--lr", "0.1"]) == 2
    assert "--lr" in error_line(capsys)


def copy_run(run, dst):
    dst.mkdir()
    for p in run.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_corrupt_and_foreign_checkpoints(run, tmp_path, capsys):
    corrupt = copy_run(run, tmp_path / "corrupt")
    ck = corrupt / "checkpoint.safetensors"
    ck.write_bytes(ck.read_bytes()[: len(ck.read_bytes()) // 2])
    assert main(["sample", str(corrupt), "--out", str(tmp_path / "a.npy")]) == 2
    line = error_line(capsys)
    assert "corrupt" in line and "train the run again" in line

    foreign = copy_run(run, tmp_path / "foreign")
    save_file({"weight": torch.zeros(3)}, str(foreign / "checkpoint.safetensors"))
    assert main(["sample", str(foreign), "--out", str(tmp_path / "b.npy")]) == 2
    assert "not a flowmatch checkpoint" in error_line(capsys)

    pickled = copy_run(run, tmp_path / "pickled")
    torch.save({"x": 1}, pickled / "checkpoint.safetensors")
    assert main(["sample", str(pickled), "--out", str(tmp_path / "c.npy")]) == 2
    error_line(capsys)

    bad_json = copy_run(run, tmp_path / "badjson")
    (bad_json / "config.json").write_text("{not json")
    assert main(["eval", str(bad_json)]) == 2
    assert "JSON" in error_line(capsys)

    other = copy_run(run, tmp_path / "other")
    (other / "config.json").write_text(json.dumps({"format": "something-else"}))
    assert main(["plot", str(other)]) == 2
    assert "not written by flowmatch" in error_line(capsys)

    assert main(["sample", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d.npy")]) == 2
    assert "does not exist" in error_line(capsys)
    assert not list(tmp_path.glob("*.npy"))


def test_a_solver_that_cannot_keep_up_names_the_flags_to_change(run, tmp_path, capsys, monkeypatch):
    import torchdiffeq

    def underflow(*args, **kwargs):  # what torchdiffeq raises when its step size underflows
        raise AssertionError("underflow in dt 0.0")

    monkeypatch.setattr(torchdiffeq, "odeint", underflow)  # imported where it is used
    argv = ["sample", str(run), "--solver", "dopri5", "--out", str(tmp_path / "x.npy")]
    assert main(argv) == 2
    line = error_line(capsys)
    assert "step size underflowed" in line and "--atol/--rtol" in line
    assert not (tmp_path / "x.npy").exists()


def test_plot_draws_the_loss_of_a_run_whose_last_metrics_line_is_torn(run, tmp_path, capsys):
    torn = copy_run(run, tmp_path / "torn")
    with (torn / "metrics.jsonl").open("a") as f:
        f.write('{"step": 99999, "lo')  # a kill or a full disk cut the last write short
    out = tmp_path / "figs"
    assert main(["plot", str(torn), "--n", "100", "--out", str(out)]) == 0
    assert (out / "loss.png").is_file()
    assert "dropped 1 unreadable line" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "launched", "said", "status"),
    [
        (FlowmatchError("the disk is full"), False, ["flowmatch: error: the disk is full"], 2),
        (TrainingInterrupted("stopped by SIGTERM"), False, ["flowmatch: stopped by SIGTERM"], 130),
        (PeerLost("rank 0: lost contact"), True, [], 2),  # the launcher names the dead rank
    ],
)
def test_a_stop_signal_during_an_errors_cleanup_reports_the_error(
    error, launched, said, status, monkeypatch, capsys
):
    """A job's launcher stops a process that lost its peer while that process cleans up: the
    KeyboardInterrupt of that stop must not replace the error with "interrupted"."""

    def fails_then_is_stopped(argv):
        try:
            raise error
        finally:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "run_command", fails_then_is_stopped)
    if launched:
        monkeypatch.setenv(LAUNCHED_ENV, "1")
    else:
        monkeypatch.delenv(LAUNCHED_ENV, raising=False)
    assert main(["train"]) == status
    assert capsys.readouterr().err.splitlines() == said


def test_a_stop_signal_alone_says_interrupted(monkeypatch, capsys):
    def stopped(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "run_command", stopped)
    assert main(["train"]) == 130
    assert capsys.readouterr().err.splitlines() == ["flowmatch: interrupted"]
