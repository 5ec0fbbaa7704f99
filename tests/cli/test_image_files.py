"""The command line on the user's own images: train on a folder, resume it, sample a class grid."""

import json

import numpy as np
import torch
from PIL import Image

from flowmatch.cli import main
from tests.cli.helpers import error_line

TINY = ["--model", "unet", "--channels", "8", "--levels", "1", "--batch-size", "8",
        "--log-every", "3", "--checkpoint-every", "3", "--threads", "1"]  # fmt: skip


def test_train_resume_and_sample_on_an_image_folder(tmp_path, monkeypatch, capsys):
    threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    data = tmp_path / "images"
    for cls in ("circle", "square"):
        (data / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
                data / cls / f"{i}.png"
            )
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # the run stores the folder's absolute path
    argv = ["train", "--data", "images", "--steps", "6", "--stop-after", "3", "--out", "run"]
    assert main([*argv, *TINY]) == 0
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["data"] == str(data.resolve())
    assert record["config"]["model"]["num_classes"] == 2
    assert "data" not in record.get("fingerprints", {})  # folders are not fingerprinted

    monkeypatch.chdir(run)
    assert main(["train", "--resume", str(run)]) == 0
    grid = tmp_path / "g.png"
    argv = ["sample", str(run), "--class", "0", "--n", "4", "--solver-steps", "2",
            "--grid", str(grid)]  # fmt: skip
    assert main(argv) == 0
    assert Image.open(grid).mode == "L"
    capsys.readouterr()
    score = ["logprob", str(run), "--solver", "euler", "--solver-steps", "2"]
    assert main([*score, "--data", str(data)]) == 0  # the run's own images: its held-out part
    text = capsys.readouterr().out
    assert "1 held-out points of" in text and "dequantized" in text and "nan" not in text
    np.savez(tmp_path / "more.npz", images=rng.integers(0, 256, (3, 8, 8), dtype=np.uint8))
    assert main([*score, "--data", str(tmp_path / "more.npz")]) == 0  # other images: all
    assert "3 images of" in (text := capsys.readouterr().out) and "bits/dim" in text

    Image.new("L", (9, 8)).save(data / "square" / "big.png")
    assert main(["train", "--data", str(data), "--steps", "1", "--out", str(tmp_path / "r2")]) == 2
    assert "big.png" in error_line(capsys)
    torch.set_num_threads(threads)
