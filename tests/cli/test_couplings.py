"""The command line for couplings, sources, reflow, distillation, time grids and the curve."""

import json

import numpy as np
import pytest

from flowmatch.cli import main
from tests.cli.helpers import error_line

TINY = ["--steps", "40", "--batch-size", "64", "--width", "16", "--depth", "2",
        "--log-every", "20", "--checkpoint-every", "40"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-ot") / "run"
    argv = ["train", "--data", "8gaussians", "--source", "moons", "--coupling", "ot"]
    assert main([*argv, "--out", str(out), *TINY]) == 0
    return out


def test_train_records_the_coupling_and_source(run):
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["coupling"] == "ot" and cfg["source"] == "moons"


def test_eval_prints_the_curve_the_recommendation_and_straightness(run, tmp_path, capsys):
    js = tmp_path / "e.json"
    argv = ["eval", str(run), "--n", "200", "--time-grid", "min-error", "--json", str(js)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "data floor" in out and "dopri5" in out
    assert "W2 vs NFE" in out and "recommended:" in out and "normalized path energy" in out
    table = json.loads(js.read_text())
    assert {r["nfe"] for r in table["rows"]} >= {1, 2, 4, 8, 100}
    assert [r["steps"] for r in table["curve"]["rows"]][:4] == [1, 2, 3, 4]
    best = table["recommended"]
    conv = table["curve"]["converged"]["w2"]
    assert best is None or best["w2"] <= (1 + table["tolerance"]) * conv
    assert table["straightness"]["straightness"] >= -1e-6


def test_sample_and_invert_with_time_grids(run, tmp_path, capsys):
    s = tmp_path / "s.npy"
    argv = ["sample", str(run), "--n", "20", "--solver", "euler", "--solver-steps", "3",
            "--seed", "0"]  # fmt: skip
    assert main([*argv, "--time-grid", "cosine", "--out", str(s)]) == 0
    z = tmp_path / "z.npy"
    assert main(["invert", str(run), "--data", str(s), "--solver", "rk4", "--solver-steps", "8",
                 "--time-grid", "min-error", "--out", str(z)]) == 0  # fmt: skip
    assert np.load(z).shape == (20, 2)


def test_reflow_and_distill_commands(run, tmp_path, capsys):
    from flowmatch.training.pairs import load_pairs

    r = tmp_path / "reflow"
    # reflow with the deprecated spellings: they still work, with one warning each
    old = ["--pairs", "200", "--solver", "rk4", "--steps", "4", "--train-steps", "20"]
    assert main(["reflow", str(run), "--out", str(r), *old]) == 0
    out, err = capsys.readouterr()
    assert "pairs made" in out
    warnings = [line for line in err.splitlines() if line.startswith("flowmatch: warning: ")]
    assert len(warnings) == 2 and "use --n-pairs" in err and "use --solver-steps" in err
    (pairs,) = (run / "pairs").iterdir()
    assert {k: load_pairs(pairs).meta[k] for k in ("n", "steps")} == {"n": 200, "steps": 4}
    d = tmp_path / "distill"
    new = ["--n-pairs", "100", "--solver", "rk4", "--solver-steps", "3", "--train-steps", "20"]
    assert main(["distill", str(r), "--out", str(d), *new, "--distill-steps", "2"]) == 0
    assert "flowmatch: warning" not in capsys.readouterr().err
    (pairs,) = (r / "pairs").iterdir()
    assert {k: load_pairs(pairs).meta[k] for k in ("n", "steps")} == {"n": 100, "steps": 3}
    s = tmp_path / "d.npy"
    assert main(["sample", str(d), "--n", "10", "--solver", "euler", "--solver-steps", "2",
                 "--out", str(s)]) == 0  # fmt: skip
    assert "NFE 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["train", "--data", "moons", "--coupling", "bogus"], "invalid choice"),
        (["train", "--data", "moons", "--source", "nowhere.npy"], "--source"),
        (["train", "--data", "moons", "--coupling", "ot", "--pairs", "p.npz"], "--pairs fixes"),
        (["train", "--data", "moons", "--coupling", "ot", "--ot-batch", "-1"], "--ot-batch"),
        (["train", "--data", "moons", "--method", "distill"], "--pairs"),
        (["sample", "RUN", "--solver", "dopri5", "--time-grid", "cosine"], "adaptive"),
        (["sample", "RUN", "--time-grid", "nope"], "invalid choice"),
        (["eval", "RUN", "--tolerance", "-1"], "--tolerance"),
        (["eval", "RUN", "--curve-solver", "dopri5"], "invalid choice: 'dopri5'"),
        (["reflow", "RUN", "--n-pairs", "0"], "--n-pairs must be an integer >= 1"),
        (["reflow", "MISSING", "--n-pairs", "10"], "does not exist"),
        (["reflow", "RUN", "--solver", "magic"], "invalid choice: 'magic'"),
        (["distill", "RUN", "--distill-steps", "0", "--n-pairs", "10"], "distill-steps"),
    ],
)
def test_bad_options_are_one_line_errors(argv, fragment, run, tmp_path, capsys):
    argv = [str(run) if a == "RUN" else str(tmp_path / "none") if a == "MISSING" else a
            for a in argv]  # fmt: skip
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "new"), *TINY]
    elif argv[0] == "sample":
        argv += ["--out", str(tmp_path / "x.npy")]
    elif argv[0] in ("reflow", "distill"):
        argv += ["--out", str(tmp_path / "new"), "--solver-steps", "2"]
    assert main(argv) == 2
    assert fragment in error_line(capsys)
    assert not (tmp_path / "new" / "config.json").exists()
