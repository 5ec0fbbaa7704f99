"""The command line with a dict condition: ``--part NAME=VALUE`` on an instructed robot run."""

import numpy as np
import pytest
import torch
from PIL import Image

import flowmatch
from flowmatch.cli import main
from flowmatch.envs import InstructedRobot
from tests.cli.helpers import error_line

TINY = ["--steps", "4", "--batch-size", "16", "--log-every", "4", "--checkpoint-every", "4",
        "--threads", "1", "--width", "16", "--depth", "1", "--cond-embed-dim", "8"]  # fmt: skip
SAMPLE = ["--solver", "midpoint", "--solver-steps", "2", "--seed", "0"]


@pytest.fixture(scope="module")
def told(tmp_path_factory):
    """A tiny run on point-robot-instructed, and camera pictures of three scenes as files."""
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("parts")
    run = root / "told"
    assert main(["train", "--data", "point-robot-instructed", "--out", str(run), *TINY]) == 0
    env = InstructedRobot()
    pictures = env.render(*env.reset([0, 1, 2]))  # (3, 3, 32, 32) in [0, 1]
    pictures = (pictures * 255).round() / 255  # on the 8-bit grid, so a PNG holds them exactly
    np.save(root / "cams.npy", pictures.numpy())
    np.save(root / "cam.npy", pictures[0].numpy())
    pixels = (pictures[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(root / "cam.png")
    Image.fromarray(pixels[:, :, 0]).save(root / "grey.png")
    Image.fromarray(pixels[:16, :16]).save(root / "small.png")
    yield {"run": str(run), "root": root, "pictures": pictures}
    torch.set_num_threads(threads)


def test_parts_sample_what_the_dict_condition_samples_in_python(told, tmp_path):
    root, said = told["root"], "go to the red goal"
    flow = flowmatch.load(told["run"])
    for image, n in (("cam.png", 4), ("cam.npy", 4), ("cams.npy", 3)):
        out = tmp_path / f"{image}.npy"
        argv = ["sample", told["run"], "--part", f"image={root / image}", "--part",
                f"instruction={said}", "--guidance", "2", "--out", str(out), *SAMPLE]  # fmt: skip
        if n == 4:
            argv += ["--n", "4"]  # one picture for every sample; cams.npy: one per sample
        assert main(argv) == 0
        picture = told["pictures"] if n == 3 else told["pictures"][0]
        cond = {"image": picture, "instruction": said}
        want = flow.sample(n, cond=cond, guidance=2.0, solver="midpoint", steps=2, seed=0)
        torch.testing.assert_close(torch.from_numpy(np.load(out)), want, rtol=1e-5, atol=1e-5)


def test_bad_parts_are_one_line_errors_and_write_nothing(told, tmp_path, capsys):
    root, out = told["root"], tmp_path / "x.npy"
    cam, said = f"image={root / 'cam.png'}", "instruction=go to the blue goal"
    cases = [
        ([f"--part={cam}"], "give --part instruction=TEXT too"),
        (["--part", cam, "--part", said, "--part", "goal=1"], "no part 'goal'; its parts are"),
        (["--part", "image", "--part", said], "--part takes NAME=VALUE, got 'image'"),
        (["--part", cam, "--part", cam, "--part", said], "--part image is given twice"),
        (["--part", f"image={root / 'small.png'}", "--part", said], "got (3, 16, 16) from"),
        (["--part", f"image={root / 'grey.png'}", "--part", said], "got (1, 32, 32) from"),
        (["--part", f"image={root / 'no.npy'}", "--part", said], "no.npy: no such file"),
        (["--part", "image=", "--part", said], "--part image: no file named"),
        (["--part", f"image={root / 'cams.npy'}", "--part", said, "--n", "5"], "but --n is 5"),
        (["--part", cam, "--part", said, "--prompt", "go"], "one of --class, --cond, --prompt"),
        (["--part", cam, "--part", "instruction=" + "go " * 30], "--part instruction: 30 words"),
        (["--class", "1"], "was trained on named parts"),
        (["--guidance", "2"], "give --part image=FILE"),
    ]
    for extra, fragment in cases:
        assert main(["sample", told["run"], "--out", str(out), *extra, *SAMPLE]) == 2, extra
        assert fragment in error_line(capsys), extra
    assert list(tmp_path.iterdir()) == []


def test_parts_on_a_run_without_them_name_the_flag_that_fits(tmp_path, capsys):
    run = tmp_path / "moons"
    tiny = ["--steps", "2", "--batch-size", "8", "--width", "8", "--depth", "1", "--threads", "1"]
    assert main(["train", "--data", "moons", "--out", str(run), *tiny]) == 0
    capsys.readouterr()
    argv = ["sample", str(run), "--part", "instruction=go", "--out", str(tmp_path / "x.npy")]
    assert main(argv) == 2
    assert "--part needs a run trained on named parts" in error_line(capsys)


def test_class_and_vector_parts_are_read_by_their_kind(tmp_path):
    from flowmatch.cli.parts import part_conditions
    from flowmatch.data.conditions import ConditionSpec

    spec = ConditionSpec.combine(
        {"goal": ConditionSpec("class", 2, ("red", "blue")), "pose": ConditionSpec("vector", 3)}
    )
    np.save(tmp_path / "one.npy", np.arange(3.0))
    np.save(tmp_path / "rows.npy", np.ones((5, 3)))
    np.save(tmp_path / "bad.npy", np.ones((5, 2)))
    pose = f"pose={tmp_path / 'one.npy'}"
    n, value = part_conditions(["goal=Blue", pose], spec, 8, fixed=False)
    row = spec.encode(value, n)  # (8, 4): the class, then the vector
    assert n == 8 and row[:, 0].tolist() == [1.0] * 8 and row[0, 1:].tolist() == [0, 1, 2]
    n, _ = part_conditions(["goal=0", f"pose={tmp_path / 'rows.npy'}"], spec, 1000, fixed=False)
    assert n == 5  # a file of one row per sample sets n, as --cond FILE does
    for given, fragment in (
        (["goal=2", pose], "unknown class 2; this part has classes 0..1"),
        (["goal=green", pose], "class number 0..1, a class name (red, blue), got 'green'"),
        (["goal=1", f"pose={tmp_path / 'bad.npy'}"], "vectors of 3 numbers"),
    ):
        with pytest.raises(flowmatch.FlowmatchError, match=r"^--part") as err:
            part_conditions(given, spec, 8, fixed=False)
        assert fragment in str(err.value) and "\n" not in str(err.value)
