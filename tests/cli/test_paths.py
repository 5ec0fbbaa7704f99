"""``flowmatch train --path NAME``: every registered path, and ``--sigma-min``, from the CLI."""

import json

import pytest

from flowmatch import load
from flowmatch.cli import main
from flowmatch.paths import PATHS
from tests.cli.helpers import error_line

TINY = ["--data", "moons", "--steps", "5", "--batch-size", "32", "--width", "8",
        "--depth", "1", "--log-every", "5", "--checkpoint-every", "5"]  # fmt: skip

CASES = [[name] for name in PATHS] + [["linear", "--sigma-min", "1e-4"]]


@pytest.mark.parametrize("path", CASES, ids=" ".join)
def test_train_accepts_every_path(path, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--path", *path, "--out", str(out), *TINY]) == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["path"] == path[0]
    assert cfg["sigma_min"] == (float(path[2]) if len(path) > 1 else 0.0)
    assert load(out).sample(4, seed=0).shape == (4, 2)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--path", "spiral"], "invalid choice: 'spiral'"),
        (["--path", "cosine", "--sigma-min", "1e-4"], "--sigma-min applies to --path linear"),
        (["--sigma-min", "1.5"], "--sigma-min must be in [0, 1)"),
    ],
)
def test_bad_paths_are_one_line_errors(argv, fragment, tmp_path, capsys):
    assert main(["train", *argv, "--out", str(tmp_path / "run"), *TINY]) == 2
    assert fragment in error_line(capsys)
    assert not (tmp_path / "run" / "config.json").exists()
