"""``flowmatch eval --oracle``: the table against v*, the figure, refusals."""

import json

import numpy as np
import pytest
import torch

from flowmatch.cli import main
from flowmatch.data.toy import moons
from tests.cli.helpers import error_line

TINY = ["--steps", "20", "--batch-size", "64", "--log-every", "10", "--checkpoint-every", "20",
        "--threads", "1", "--width", "16", "--depth", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("oracle")
    np.save(root / "train.npy", moons(110, torch.Generator().manual_seed(0)).numpy())
    np.save(root / "held.npy", moons(60, torch.Generator().manual_seed(1)).numpy())
    assert (
        main(["train", "--data", str(root / "train.npy"), "--out", str(root / "run"), *TINY]) == 0
    )
    yield root
    torch.set_num_threads(threads)


def test_eval_oracle_prints_the_table_and_writes_the_figure(run, tmp_path, capsys):
    figure, js = tmp_path / "oracle.png", tmp_path / "eval.json"
    argv = ["eval", str(run / "run"), "--data", str(run / "held.npy"), "--no-curve", "--oracle",
            "--oracle-bins", "4", "--oracle-samples", "30", "--oracle-figure", str(figure),
            "--json", str(js)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "optimal velocity v* of 99 training rows" in out
    assert "E|v - v*|^2 / E|v*|^2 over 60 held-out points" in out
    assert "(the minimum)" in out and "median distance to the nearest training point" in out
    assert figure.stat().st_size > 0
    oracle = json.loads(js.read_text())["oracle"]
    assert len(oracle["bins"]) == 4 and oracle["loss"]["gap"] == pytest.approx(
        oracle["loss"]["network"] - oracle["loss"]["oracle"]
    )
    assert oracle["memorization"]["oracle_samples"] < oracle["memorization"]["held_out"]
    # never overwritten: a second run refuses the figure before any work
    assert main(argv[:-2]) == 2
    assert "already exists" in error_line(capsys)


def test_oracle_figure_needs_oracle(run, tmp_path, capsys):
    argv = ["eval", str(run / "run"), "--oracle-figure", str(tmp_path / "f.png")]
    assert main(argv) == 2
    assert "--oracle-figure needs --oracle" in error_line(capsys)
