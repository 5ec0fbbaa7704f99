"""Tests for flowmatch.viz: each figure is a valid image, written atomically, for D = 1, 2, 5."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowmatch.errors import FlowmatchError
from flowmatch.viz import (
    animate_path,
    image_grid_bytes,
    plot_density,
    plot_loss,
    plot_path_snapshots,
    plot_samples,
    plot_trajectories,
    plot_w2_nfe,
    save_image_grid,
)

DIMS = [1, 2, 5]


def circle_path(n_times: int, n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A straight-line path from N(0, I) noise at t = 0 to points near a circle at t = 1."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(n, d))
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    x1 = 0.1 * rng.normal(size=(n, d))
    x1[:, 0] += 3.0 * np.cos(angle)
    if d > 1:
        x1[:, 1] += 3.0 * np.sin(angle)
    ts = np.linspace(0.0, 1.0, n_times)
    return (1.0 - ts)[:, None, None] * x0 + ts[:, None, None] * x1, ts  # (T, N, D), (T,)


def check_image(path: Path, fmt: str = "PNG") -> Image.Image:
    """The file is a non-empty image of the given format, alone in its folder (no temp files)."""
    assert path.is_file() and path.stat().st_size > 0
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    img = Image.open(path)
    img.verify()  # raises on a truncated or corrupt file
    img = Image.open(path)
    assert img.format == fmt
    assert img.width > 50 and img.height > 50
    return img


@pytest.mark.parametrize("d", DIMS)
def test_plot_samples(tmp_path: Path, d: int) -> None:
    traj, _ = circle_path(2, 300, d)
    out = plot_samples(traj[-1], traj[0][:200], tmp_path / "samples.png", title="circle")
    assert out == tmp_path / "samples.png"
    img = check_image(out)
    assert img.width > img.height  # two panels side by side


def test_a_wide_cloud_gets_wide_panels_and_more_panels_widen_the_figure(tmp_path: Path) -> None:
    """Panels take the shape of the points' box (no square of empty space around wide data
    such as moons), and each entry of ``more`` adds a panel."""
    rng = np.random.default_rng(0)
    square = rng.uniform(-1, 1, size=(500, 2))
    wide = square * np.array([3.0, 1.0])  # a box three times as wide as high
    sizes = {}
    for name, x, more in [("square", square, None), ("wide", wide, None), ("3", wide, {"b": wide})]:
        img = check_image(plot_samples(x, x, tmp_path / name / "s.png", title="t", more=more))
        sizes[name] = (img.width, img.height)
    assert sizes["wide"][0] == sizes["square"][0] and sizes["wide"][1] < 0.7 * sizes["square"][1]
    assert sizes["3"][1] == sizes["wide"][1] and sizes["3"][0] > 1.4 * sizes["wide"][0]


@pytest.mark.parametrize("d", DIMS)
def test_plot_trajectories(tmp_path: Path, d: int) -> None:
    traj, _ = circle_path(8, 300, d)
    check_image(plot_trajectories(traj, tmp_path / "paths.png", n_paths=50))


# 2-D panels are scatters below 2,000 particles and histograms of counts above
@pytest.mark.parametrize(("d", "n"), [(1, 300), (2, 300), (5, 300), (2, 2_500)])
def test_plot_path_snapshots(tmp_path: Path, d: int, n: int) -> None:
    traj, ts = circle_path(11, n, d)
    img = check_image(plot_path_snapshots(traj, ts, tmp_path / "snap.png", n_panels=3))
    assert img.width > 2 * img.height  # one row of panels


def test_plot_path_snapshots_more_panels_than_times(tmp_path: Path) -> None:
    traj, ts = circle_path(3, 100, 2)
    check_image(plot_path_snapshots(traj, ts, tmp_path / "snap.png", n_panels=10))


@pytest.mark.parametrize("d", DIMS)
def test_animate_path_has_one_frame_per_time(tmp_path: Path, d: int) -> None:
    traj, ts = circle_path(7, 200, d)
    img = check_image(animate_path(traj, ts, tmp_path / "flow.gif", fps=10), fmt="GIF")
    assert img.n_frames == 7
    assert img.info["loop"] == 0
    durations = []
    for k in range(img.n_frames):
        img.seek(k)
        durations.append(img.info["duration"])
    assert durations[-1] > durations[0]  # the last frame is held
    img.seek(0)
    assert img.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # background stays white


def test_animate_path_needs_gif_suffix(tmp_path: Path) -> None:
    traj, ts = circle_path(3, 10, 2)
    with pytest.raises(FlowmatchError, match="gif"):
        animate_path(traj, ts, tmp_path / "flow.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("positive", [True, False])
def test_plot_loss(tmp_path: Path, positive: bool) -> None:
    steps = np.arange(1, 501)
    losses = 1.0 / np.sqrt(steps) + 0.01 * np.random.default_rng(0).random(500)
    losses[3] = 40.0  # a spike
    losses[10] = np.nan  # a diverged step is skipped, not fatal
    if not positive:
        losses -= 0.5  # negative log-likelihoods: the axis falls back to linear
    ema = np.convolve(np.nan_to_num(losses), np.ones(10) / 10, mode="same")
    check_image(plot_loss(steps, losses, tmp_path / "loss.png", ema_losses=ema))


def test_plot_loss_one_value(tmp_path: Path) -> None:
    check_image(plot_loss([0], [0.5], tmp_path / "loss.png"))


@pytest.mark.parametrize("d", DIMS)
def test_plot_density(tmp_path: Path, d: int) -> None:
    traj, _ = circle_path(2, 300, d)
    if d == 1:
        x = np.linspace(-5.0, 5.0, 200)
        ld = -0.5 * x**2 - 0.5 * np.log(2 * np.pi)
        check_image(plot_density(x, None, ld, tmp_path / "density.png", data=traj[-1]))
        return
    x, y = np.linspace(-4.0, 4.0, 60), np.linspace(-3.0, 3.0, 40)
    xx, yy = np.meshgrid(x, y)  # (40, 60)
    ld = -((np.hypot(xx, yy) - 3.0) ** 2) / 0.02
    ld[0, 0] = -np.inf  # zero density is allowed
    check_image(plot_density(xx, yy, ld, tmp_path / "density.png", data=traj[-1]))
    out = plot_density(x, y, ld, tmp_path / "density.png", log=True, title="log p")
    check_image(out)  # overwritten in place, still alone in the folder


def test_plot_density_rejects_mismatched_grid(tmp_path: Path) -> None:
    x, y = np.linspace(-1, 1, 5), np.linspace(-1, 1, 7)
    with pytest.raises(FlowmatchError, match="grid shapes"):
        plot_density(x, y, np.zeros((5, 7)), tmp_path / "density.png")


@pytest.mark.parametrize("shape", [(10, 8, 8), (10, 1, 8, 8), (4, 3, 5, 6)])
def test_save_image_grid(tmp_path: Path, shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(0).normal(size=shape) * 7.0 - 3.0  # any range
    img = check_image(save_image_grid(images, tmp_path / "grid.png"))
    assert img.mode == ("RGB" if shape[1] == 3 else "L")
    pixels = np.asarray(img)
    assert pixels.min() == 0  # min-max scaled over the grid


def test_save_image_grid_layout(tmp_path: Path) -> None:
    images = np.zeros((5, 8, 8))
    images[2] = 1.0
    img = Image.open(save_image_grid(images, tmp_path / "grid.png", nrow=5, scale=1))
    assert img.size == (5 * 8 + 6 * 2, 8 + 2 * 2)  # one row, 2-pixel borders
    tall = Image.open(save_image_grid(images, tmp_path / "grid.png", nrow=1, scale=1))
    assert tall.size == (8 + 2 * 2, 5 * 8 + 6 * 2)
    constant = save_image_grid(np.full((3, 4, 4), 2.5), tmp_path / "flat.png")
    assert Image.open(constant).size[0] > 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: plot_samples(np.zeros((5, 2)), np.zeros((5, 3)), p), "must match"),
        (lambda p: plot_samples(np.full((5, 2), np.nan), np.zeros((5, 2)), p), "non-finite"),
        (lambda p: plot_samples(np.zeros((0, 2)), np.zeros((5, 2)), p), "empty"),
        (lambda p: plot_trajectories(np.zeros((5, 2)), p), "shape"),
        (lambda p: plot_path_snapshots(np.zeros((3, 4, 2)), np.zeros(4), p), "3 steps"),
        (lambda p: plot_loss(np.arange(3), np.arange(4), p), "must match"),
        (lambda p: plot_loss(np.arange(2), [np.nan, np.inf], p), "no finite"),
        (lambda p: save_image_grid(np.zeros((2, 2, 4, 4)), p), "channels"),
        (lambda p: plot_samples(np.zeros((5, 2)), np.zeros((5, 2)), p.with_suffix(".xyz")), "xyz"),
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path: Path, call, match: str) -> None:
    with pytest.raises(FlowmatchError, match=match):
        call(tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_creates_missing_folders(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "samples.png"
    assert plot_samples(np.zeros((4, 2)), np.ones((4, 2)), str(out)) == out
    assert out.is_file()


@pytest.mark.parametrize(
    "draw",
    [
        lambda p, **kw: plot_samples(np.zeros((4, 2)), np.ones((4, 2)), p, **kw),
        lambda p, **kw: animate_path(*circle_path(3, 5, 2), p.with_suffix(".gif"), **kw),
        lambda p, **kw: save_image_grid(np.zeros((2, 4, 4)), p, **kw),
    ],
)
def test_overwrite_false_never_replaces_a_file(tmp_path: Path, draw) -> None:
    first = draw(tmp_path / "fig.png")  # the library's default replaces...
    old = first.read_bytes()
    assert draw(tmp_path / "fig.png").read_bytes() == old
    with pytest.raises(FileExistsError):  # ...but not when asked not to
        draw(tmp_path / "fig.png", overwrite=False)
    assert first.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left


def test_image_grid_bytes_are_what_save_image_grid_writes(tmp_path: Path) -> None:
    images = np.random.default_rng(0).random((6, 1, 5, 5))
    path = save_image_grid(images, tmp_path / "grid.jpg", nrow=3, overwrite=False)
    assert image_grid_bytes(images, ".jpg", 3) == path.read_bytes()
    check_image(path, "JPEG")


def test_image_grids_share_a_value_range(tmp_path: Path) -> None:
    dim = np.full((1, 1, 4, 4), 0.5)
    bright = np.concatenate([dim, np.full((1, 1, 4, 4), 2.0)])  # 2.0: clipped to white

    def grey(data: bytes) -> int:  # the first image's grey level, inside the border
        return Image.open(io.BytesIO(data)).getpixel((5, 5))

    assert grey(image_grid_bytes(dim, scale=1)) == 0  # alone, its own minimum: black
    assert grey(image_grid_bytes(dim, scale=1, value_range=(0, 1))) in (127, 128)
    assert grey(image_grid_bytes(bright, scale=1, value_range=(0, 1))) in (127, 128)
    with pytest.raises(FlowmatchError, match="low < high"):
        image_grid_bytes(dim, value_range=(1, 1))


def test_plot_w2_nfe(tmp_path: Path) -> None:
    others = [("heun", 8, 0.3), ("rk4", 20, 0.26), ("rk4", 40, float("inf"))]
    out = plot_w2_nfe([1, 2, 4, 8], [0.9, 0.5, float("nan"), 0.25], tmp_path / "w2.png",
                      converged=(300, 0.24), floor=0.05, others=others)  # fmt: skip
    assert check_image(out).width > check_image(out).height
    with pytest.raises(FlowmatchError, match="nfe must be > 0"):
        plot_w2_nfe([0, 1], [1.0, 0.5], tmp_path / "bad.png")
    with pytest.raises(FlowmatchError, match="must match"):
        plot_w2_nfe([1, 2], [1.0], tmp_path / "bad.png")


def test_import_is_lazy_and_pyplot_free() -> None:
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import flowmatch, flowmatch.viz\n"
        "assert 'matplotlib' not in sys.modules, 'import flowmatch.viz imported matplotlib'\n"
        "assert 'PIL' not in sys.modules, 'import flowmatch.viz imported Pillow'\n"
        "import flowmatch.cli.main\n"
        "slow = {'ot', 'sklearn', 'scipy', 'torchdiffeq'} & set(sys.modules)\n"
        "assert not slow, f'importing flowmatch loaded {slow}: import them where they are used'\n"
        "import tempfile\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        "    flowmatch.viz.plot_samples(np.zeros((3, 2)), np.ones((3, 2)), tmp + '/s.png')\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'figures must not go through pyplot'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
