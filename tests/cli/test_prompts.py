"""The command line with text prompts: a run trained on captions, prompt grids, bad prompts."""

import pytest
import torch
from PIL import Image

from flowmatch.cli import main
from tests.cli.helpers import error_line

TINY = ["--steps", "4", "--batch-size", "16", "--log-every", "4", "--checkpoint-every", "4",
        "--threads", "1", "--model", "unet", "--channels", "4", "--levels", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("prompts") / "captions"
    assert main(["train", "--data", "digits-captions", "--out", str(out), *TINY]) == 0
    yield str(out)
    torch.set_num_threads(threads)


def test_one_grid_row_per_prompt_and_unknown_words_are_fine(run, tmp_path, capsys):
    grid = tmp_path / "g.png"
    argv = ["sample", run, "--prompt", "a thick seven", "--prompt", "a wobbly zebra one",
            "--guidance", "2", "--solver-steps", "1", "--grid", str(grid)]  # fmt: skip
    assert main(argv) == 0
    assert "grid of 16 samples" in capsys.readouterr().out
    width, height = Image.open(grid).size
    assert width > 3 * height  # two rows of eight


def test_bad_prompts_are_one_line_errors(run, tmp_path, capsys):
    png = str(tmp_path / "x.png")
    long = " ".join(["seven"] * 40)
    cases = [
        (["--prompt", long], "reads at most"),
        (["--prompt", "a", "--prompt", "b", "--n", "5"], "does not split evenly"),
        (["--prompt", "a thick seven", "--class", "7"], "one of --class, --cond, --prompt"),
        (["--class", "7"], "use --prompt TEXT"),
        (["--guidance", "2"], "(or --prompt TEXT)"),
    ]
    for extra, fragment in cases:
        assert main(["sample", run, "--grid", png, *extra]) == 2, extra
        assert fragment in error_line(capsys), extra


def test_eval_images_scores_a_prompted_run_per_phrasing_set(run, tmp_path, capsys, monkeypatch):
    from flowmatch.evaluation import classifier

    monkeypatch.setenv("FLOWMATCH_CACHE", str(tmp_path / "cache"))
    quick = {"epochs": 0.2, "width": 4, "feature_dim": 8}
    monkeypatch.setitem(classifier.CLASSIFIER_SETTINGS, "digits-images", quick)
    argv = ["eval-images", run, "--n", "20", "--solver-steps", "1", "--guidance", "0", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = [line.rsplit(maxsplit=4) for line in out.splitlines() if line.startswith("w=")]
    rows = {label: numbers for label, *numbers in table}  # label -> NFE, accuracy, Fréchet, n
    assert "training (6 sentence shapes), held-out (4 shapes never trained on)" in out
    assert sorted(rows) == sorted(
        f"w={w} midpoint x1, {p} phrasings" for w in (0, 2) for p in ("training", "held-out")
    )
    for nfe, accuracy, frechet, n in rows.values():
        assert nfe == "2" and 0 <= float(accuracy) <= 1 and float(frechet) >= 0 and n == "20"
    # w = 0 ignores the prompt: both phrasings give the same samples from the same noise
    w0 = "w=0 midpoint x1, {} phrasings"
    assert rows[w0.format("training")] == rows[w0.format("held-out")]
    assert main([*argv, "--phrasings", "held-out"]) == 0
    out = capsys.readouterr().out
    assert "held-out phrasings" in out and "training phrasings" not in out
    for extra, fragment in ((["--phrasings", "novel"], "invalid choice: 'novel'"),
                            (["--phrasings"], "expected at least one argument")):  # fmt: skip
        assert main([*argv, *extra]) == 2
        assert fragment in error_line(capsys)
