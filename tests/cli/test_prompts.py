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
