"""The user's images: folders of PNG/JPEG (labelled by sub-folder or not) and uint8 .npz files."""

import numpy as np
import pytest
import torch
from PIL import Image

from flowmatch.data import get_dataset
from flowmatch.data.image_files import PIXEL_GRID, ImageFileDataset, load_image_files
from flowmatch.errors import FlowmatchError


def write_pngs(folder, n, size=(8, 8), mode="L", seed=0):
    """``n`` random images of ``size`` (width, height) in ``mode``; returns their pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    pixels = []
    for i in range(n):
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(arr, mode).save(folder / f"{i:02d}.png")
        pixels.append(arr)
    return pixels


def test_sub_folders_are_classes_in_name_order(tmp_path):
    dogs = write_pngs(tmp_path / "dog", 3, seed=1)
    cats = write_pngs(tmp_path / "cat", 5, seed=2)
    ds = get_dataset(tmp_path)
    assert isinstance(ds, ImageFileDataset) and ds.shape == (1, 8, 8)
    assert ds.condition.kind == "class" and ds.condition.names == ("cat", "dog")
    x = torch.cat([ds.train_data, ds.test_data])
    y = torch.cat([ds.train_cond, ds.test_cond])
    assert x.shape[0] == 8 and sorted(y.tolist()) == [0] * 5 + [1] * 3
    # every image comes back with its class, as k / 255
    for label, pixels in ((0, cats), (1, dogs)):
        want = {torch.from_numpy(p / 255.0).float().flatten().numpy().tobytes() for p in pixels}
        got = {row.flatten().numpy().tobytes() for row in x[y == label]}
        assert got == want


def test_unlabelled_folder_of_rgb_images(tmp_path):
    write_pngs(tmp_path, 10, size=(6, 4), mode="RGB")
    ds = load_image_files(tmp_path, holdout_fraction=0.2)
    assert ds.condition is None and ds.shape == (3, 4, 6)
    assert ds.train_data.shape[0] == 8 and ds.test_data.shape[0] == 2
    x, c = ds.sample_batch(5, torch.Generator().manual_seed(0))
    assert c is None and x.shape == (5, 3, 4, 6)


def test_draws_are_dequantized_on_the_pixel_grid(tmp_path):
    write_pngs(tmp_path / "a", 4)
    ds = get_dataset(tmp_path)
    assert ds.quantization is PIXEL_GRID and PIXEL_GRID.high == 256 / 255
    levels = ds.train_data * 255  # integers 0..255, up to float32 rounding
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    y = ds.sample(64, torch.Generator().manual_seed(0)) * 255
    offset = y - y.floor()  # the dequantization noise u ~ U[0, 1)
    assert offset.std() > 0.2 and bool(((y >= 0) & (y < 256)).all())
    assert set(y.floor().unique().tolist()) <= set(levels.round().unique().tolist())
    raw = ds.held_out(None, torch.Generator().manual_seed(0), dequantize=False)
    assert torch.equal(raw, ds.test_data)


@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("labelled", [False, True])
def test_npz_of_uint8_images(tmp_path, channels, labelled):
    rng = np.random.default_rng(0)
    shape = (10, 5, 7) + (() if channels is None else (channels,))
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    arrays = {"images": images}
    if labelled:
        arrays["labels"] = np.arange(10) % 3
    np.savez(tmp_path / "imgs.npz", **arrays)
    ds = get_dataset(tmp_path / "imgs.npz")
    c = channels or 1
    assert isinstance(ds, ImageFileDataset) and ds.shape == (c, 5, 7)
    x = torch.cat([ds.train_data, ds.test_data])
    want = torch.from_numpy(images.reshape(10, 5, 7, c) / 255.0).float().permute(0, 3, 1, 2)
    assert sorted(x.sum(dim=(1, 2, 3)).tolist()) == pytest.approx(
        sorted(want.sum(dim=(1, 2, 3)).tolist())
    )
    if labelled:
        assert ds.condition.size == 3 and ds.condition.names == ("0", "1", "2")
    else:
        assert ds.condition is None


def test_plain_npz_still_loads_as_points(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones((4, 2)))
    ds = get_dataset(tmp_path / "x.npz")
    assert not isinstance(ds, ImageFileDataset) and ds.shape == (2,)


def one_line_error(path, *words):
    with pytest.raises(FlowmatchError) as info:
        get_dataset(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    for word in words:
        assert word in msg, msg
    return msg


def test_mixed_sizes_name_the_file(tmp_path):
    write_pngs(tmp_path / "a", 3)
    write_pngs(tmp_path / "b", 1, size=(9, 8))
    one_line_error(tmp_path, str(tmp_path / "b" / "00.png"), "9x8", "8x8")


def test_mixed_modes_name_the_file(tmp_path):
    write_pngs(tmp_path, 2)
    Image.new("RGB", (8, 8)).save(tmp_path / "z.png")
    one_line_error(tmp_path, "z.png", "RGB", "greyscale")


def test_transparent_pixels_are_refused_and_opaque_alpha_dropped(tmp_path):
    Image.new("RGBA", (8, 8), (1, 2, 3, 255)).save(tmp_path / "a.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 255)).save(tmp_path / "b.png")
    assert get_dataset(tmp_path).shape == (3, 8, 8)
    Image.new("RGBA", (8, 8), (1, 2, 3, 0)).save(tmp_path / "c.png")
    one_line_error(tmp_path, "c.png", "transparent")


def test_non_image_and_damaged_files(tmp_path):
    write_pngs(tmp_path, 2)
    (tmp_path / "notes.txt").write_text("hello")
    one_line_error(tmp_path, "notes.txt", "not an image")
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    one_line_error(tmp_path, "bad.png", "cannot be read")


def test_empty_and_badly_shaped_folders(tmp_path):
    one_line_error(tmp_path, str(tmp_path), "no images")
    (tmp_path / "cls").mkdir()
    one_line_error(tmp_path, "cls", "no images")
    write_pngs(tmp_path / "cls", 2)
    write_pngs(tmp_path / "loose", 0)
    Image.new("L", (8, 8)).save(tmp_path / "stray.png")
    one_line_error(tmp_path, "stray.png", "sub-folder")


def test_bad_npz_contents(tmp_path):
    np.savez(tmp_path / "f.npz", images=np.zeros((4, 8, 8), dtype=np.float32))
    one_line_error(tmp_path / "f.npz", "uint8")
    np.savez(tmp_path / "s.npz", images=np.zeros((4, 8, 8, 2), dtype=np.uint8))
    one_line_error(tmp_path / "s.npz", "(4, 8, 8, 2)")
    np.savez(tmp_path / "l.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.zeros(3, int))
    one_line_error(tmp_path / "l.npz", "labels", "4 integer labels")
