"""The command line with conditions: class grids, guidance, condition vectors, bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from flowmatch.cli import main
from tests.cli.helpers import error_line

TINY = ["--steps", "8", "--batch-size", "32", "--log-every", "4", "--checkpoint-every", "8",
        "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("cond")
    image = root / "digits"
    argv = ["train", "--data", "digits-images", "--model", "unet", "--channels", "8",
            "--levels", "1", "--out", str(image), *TINY]  # fmt: skip
    assert main(argv) == 0
    robot = root / "robot"
    argv = ["train", "--data", "point-robot", "--width", "16", "--depth", "1", "--out",
            str(robot), *TINY]  # fmt: skip
    assert main(argv) == 0
    nodrop = root / "nodrop"
    assert main([*argv[: -len(TINY) - 1], str(nodrop), *TINY, "--cond-drop", "0"]) == 0
    yield {"image": image, "robot": robot, "nodrop": nodrop}
    torch.set_num_threads(threads)


def test_class_grid_with_guidance(runs, tmp_path, capsys):
    grid = tmp_path / "out.png"
    argv = ["sample", str(runs["image"]), "--class", "3", "--guidance", "2", "--grid", str(grid),
            "--n", "16", "--solver-steps", "2"]  # fmt: skip
    assert main(argv) == 0
    img = Image.open(grid)
    assert img.mode == "L" and img.size[0] > 8 * 4
    assert "grid of 16 samples" in capsys.readouterr().out


def test_all_classes_and_samples_file(runs, tmp_path):
    out, grid = tmp_path / "s.npy", tmp_path / "all.png"
    argv = ["sample", str(runs["image"]), "--class", "all", "--n", "20", "--solver-steps", "2",
            "--out", str(out), "--grid", str(grid)]  # fmt: skip
    assert main(argv) == 0
    assert np.load(out).shape == (20, 1, 8, 8) and grid.exists()


def test_condition_vectors_from_a_file(runs, tmp_path):
    cond = tmp_path / "obs.npy"
    np.save(cond, np.array([[-1.1, 0.0, 1.1, 0.0], [-1.0, 0.1, 1.0, -0.1], [-1.2, 0, 1.1, 0]]))
    out = tmp_path / "chunks.npy"
    argv = ["sample", str(runs["robot"]), "--cond", str(cond), "--guidance", "1.5",
            "--solver-steps", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert np.load(out).shape == (3, 20)  # one chunk per observation


def test_bad_conditions_are_one_line_errors(runs, tmp_path, capsys):
    bad_vec = tmp_path / "bad.npy"
    np.save(bad_vec, np.zeros((2, 3)))
    image, robot = str(runs["image"]), str(runs["robot"])
    png = str(tmp_path / "x.png")
    cases = [
        (["sample", image, "--class", "12", "--grid", png], "unknown class 12"),
        (["sample", image, "--class", "cat", "--grid", png], "class number 0..9"),
        (["sample", image, "--guidance", "2", "--grid", png], "--class K or --cond"),
        (["sample", image, "--cond", str(bad_vec), "--grid", png], "trained on class labels"),
        (
            ["sample", robot, "--cond", str(bad_vec), "--out", str(tmp_path / "y.npy")],
            "condition vectors of size 4",
        ),
        (["sample", robot, "--class", "1", "--out", str(tmp_path / "y.npy")], "use --cond"),
        (["sample", robot, "--grid", png], "--grid draws images"),
        (["sample", image], "--grid FILE.png"),
        (["sample", image, "--class", "1", "--grid", str(tmp_path / "x.gif")], "must end in .png"),
        (
            [
                "sample",
                str(runs["nodrop"]),
                "--cond",
                str(tmp_path / "obs.npy"),
                "--guidance",
                "2",
                "--out",
                str(tmp_path / "z.npy"),
            ],
            "--cond-drop 0",
        ),
        (
            [
                "train",
                "--data",
                "point-robot",
                "--coupling",
                "ot",
                "--out",
                str(tmp_path / "r"),
                *TINY,
            ],
            "continuous conditions",
        ),
        (
            [
                "train",
                "--data",
                "digits-images",
                "--model",
                "unet",
                "--num-classes",
                "3",
                "--out",
                str(tmp_path / "r2"),
                *TINY,
            ],
            "--num-classes 3 does not match",
        ),
    ]
    np.save(tmp_path / "obs.npy", np.zeros(4))
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        assert fragment in error_line(capsys), argv


def test_eval_images_scores_samples_with_a_cached_classifier(runs, tmp_path, capsys, monkeypatch):
    from flowmatch.evaluation import classifier

    cache = tmp_path / "cache"
    monkeypatch.setenv("FLOWMATCH_CACHE", str(cache))
    quick = {"epochs": 0.2, "width": 4, "feature_dim": 8}
    monkeypatch.setitem(classifier.CLASSIFIER_SETTINGS, "digits-images", quick)
    argv = ["eval-images", str(runs["image"]), "--n", "20", "--solver-steps", "2",
            "--guidance", "1", "3"]  # fmt: skip
    for _ in range(2):  # the second run loads the cached classifier
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "real held-out" in out and "real train" in out and "w=3 midpoint x2" in out
    assert len(list(cache.glob("classifier-digits-images-*.safetensors"))) == 1
    assert main(["eval-images", str(runs["robot"])]) == 2
    assert "class-conditional or prompted image runs" in error_line(capsys)
    assert main(["eval-images", str(runs["image"]), "--phrasings", "training"]) == 2
    assert "with class labels; drop --phrasings" in error_line(capsys)


def test_guidance_that_overflows_writes_nothing(runs, tmp_path, capsys):
    out, grid = tmp_path / "s.npy", tmp_path / "g.png"
    argv = ["sample", str(runs["image"]), "--class", "3", "--guidance", "1e30", "--n", "4",
            "--solver-steps", "2", "--out", str(out), "--grid", str(grid)]  # fmt: skip
    assert main(argv) == 2
    assert "not finite" in error_line(capsys)
    assert list(tmp_path.iterdir()) == []
