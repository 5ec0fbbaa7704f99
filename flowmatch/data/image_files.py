"""The user's own images: a folder of PNG/JPEG files or an ``.npz`` of uint8 arrays.

A folder holds either the images themselves (unlabelled) or one sub-folder per class (the
sorted sub-folder names are the class names, labels 0..K-1). An ``.npz`` holds ``images``,
uint8 of shape (N, H, W) or (N, H, W, C) with C = 1 or 3, and optionally ``labels``, integers
of shape (N,). Either way the pixels k = 0..255 become k / 255, of shape (N, C, H, W), and
every draw is uniformly dequantized on that grid, y = k / 255 + u / 255, u ~ U[0, 1).

Colour modes: greyscale (``L``, ``1``) gives one channel, ``RGB`` and palette (``P``) images
three; an alpha channel (``LA``, ``RGBA``, ``PA``) is dropped when it is fully opaque and
refused otherwise, and 16-bit or float images are refused. Every problem (an unreadable or
non-image file, a size or channel count other than the first image's, an empty folder) is
one :class:`~flowmatch.errors.FlowmatchError` line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.dataset import ArrayDataset
from flowmatch.data.files import npz_arrays
from flowmatch.data.images import ImageDataset
from flowmatch.data.quantization import Quantization
from flowmatch.errors import FlowmatchError

__all__ = [
    "IMAGE_SUFFIXES",
    "PIXEL_GRID",
    "ImageFileDataset",
    "is_image_npz",
    "load_image_files",
    "read_image",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File name endings read as images (in any letter case)."""

PIXEL_GRID = Quantization(levels=256, bin_width=1.0 / 255.0, low=0.0)
"""The values k / 255, k = 0..255, of 8-bit pixels."""

# Pillow mode -> mode converted to (None: kept as it is); alpha modes are checked first.
_CONVERT = {"1": "L", "L": None, "P": "RGB", "RGB": None}
_ALPHA = {"LA": "L", "RGBA": "RGB", "PA": "RGB"}


class ImageFileDataset(ImageDataset):
    """User images (N, C, H, W) in [0, 1], labelled or not, split once like any data file.

    Training draws (:meth:`sample`, :meth:`sample_batch`) and held-out draws are dequantized
    on the 8-bit grid :data:`PIXEL_GRID` with the caller's generator; ``train_data`` and
    ``test_data`` keep the grid values k / 255.

    Args:
        x: images (N, C, H, W), values k / 255.
        name: the folder or file they came from.
        labels: class labels (N,) in 0..K-1, or None for unlabelled images.
        class_names: one name per class (with ``labels``).
        holdout_fraction: share of images held out, as for :class:`ArrayDataset`.
        split_seed: seed of the split.

    Example:
        >>> x = torch.arange(4.0).reshape(4, 1, 1, 1) / 255
        >>> ds = ImageFileDataset(x, "demo", torch.tensor([0, 1, 0, 1]), ("a", "b"), 0.25)
        >>> ds.shape, ds.condition.names, ds.test_data.shape[0]
        ((1, 1, 1), ('a', 'b'), 1)
    """

    quantization = PIXEL_GRID

    def __init__(
        self,
        x: Tensor,
        name: str,
        labels: Tensor | None = None,
        class_names: tuple[str, ...] = (),
        holdout_fraction: float = 0.1,
        split_seed: int = 0,
    ) -> None:
        spec = None if labels is None else ConditionSpec("class", len(class_names), class_names)
        ArrayDataset.__init__(
            self, x, name, holdout_fraction, split_seed, cond=labels, condition=spec
        )
        if spec is None:
            self.condition = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` training images drawn with replacement, dequantized, (n, C, H, W)."""
        return self.sample_batch(n, generator)[0]

    def sample_batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """``n`` dequantized training images (n, C, H, W) and their labels (n,) or None."""
        x, cond = ArrayDataset.sample_batch(self, n, generator)
        return PIXEL_GRID.dequantize(x, generator), cond

    def held_out(
        self, n: int | None, generator: torch.Generator, *, dequantize: bool = True
    ) -> Tensor:
        """Held-out images (all when ``n`` is None), dequantized unless ``dequantize=False``."""
        return self.held_out_batch(n, generator, dequantize=dequantize)[0]

    def held_out_batch(
        self, n: int | None, generator: torch.Generator, *, dequantize: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`held_out` with the labels of the images (or None)."""
        x, cond = ArrayDataset.held_out_batch(self, n, generator)
        return (PIXEL_GRID.dequantize(x, generator) if dequantize else x), cond

    def __repr__(self) -> str:
        return (
            f"ImageFileDataset(name={self.name!r}, shape={self.shape}, "
            f"train={self.train_data.shape[0]}, test={self.test_data.shape[0]}, "
            f"classes={0 if self.condition is None else self.condition.size})"
        )


def is_image_npz(path: str | Path) -> bool:
    """Whether ``path`` is an ``.npz`` archive holding an array named ``images``."""
    p = Path(path)
    if p.suffix.lower() != ".npz" or not p.is_file():
        return False
    import zipfile

    try:
        with zipfile.ZipFile(p) as archive:
            return "images.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False  # left to load_array, which says what is wrong


def load_image_files(
    path: str | Path, holdout_fraction: float = 0.1, split_seed: int = 0
) -> ImageFileDataset:
    """Read a folder of PNG/JPEG images or an ``.npz`` of uint8 images (see the module).

    Args:
        path: the folder, or the ``.npz`` file with ``images`` (and optional ``labels``).
        holdout_fraction: share of images held out for evaluation.
        split_seed: seed of the split.

    Returns:
        The data set, class-conditional when there are labels.

    Raises:
        FlowmatchError: one line naming the offending file.
    """
    p = Path(path)
    if p.is_dir():
        pixels, labels, names = _read_folder(p)
    else:
        pixels, labels, names = _read_npz(p)
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(0, 3, 1, 2)  # (N, C, H, W)
    y = None if labels is None else torch.from_numpy(labels)
    return ImageFileDataset(x.contiguous(), str(path), y, names, holdout_fraction, split_seed)


def _read_folder(root: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Pixels (N, H, W, C) uint8, labels (N,) or None, and class names of an image folder."""
    entries = _visible(root)
    folders = [e for e in entries if e.is_dir()]
    files = [e for e in entries if not e.is_dir()]
    if not entries:
        raise FlowmatchError(
            f"{root}: the folder holds no images; add PNG or JPEG files, or one sub-folder "
            "of them per class"
        )
    if folders and files:
        raise FlowmatchError(
            f"{root}: holds both files ({files[0].name}) and class sub-folders "
            f"({folders[0].name}); put every image in a class sub-folder, or none"
        )
    if files:
        return _read_images(files), None, ()
    images, labels = [], []
    for k, folder in enumerate(folders):
        inside = _visible(folder)
        nested = next((e for e in inside if e.is_dir()), None)
        if nested is not None:
            raise FlowmatchError(
                f"{nested}: a folder inside the class folder {folder.name}; each class "
                "folder holds image files only"
            )
        if not inside:
            raise FlowmatchError(f"{folder}: the class folder holds no images; add some")
        images += inside
        labels += [k] * len(inside)
    names = tuple(f.name for f in folders)
    return _read_images(images), np.asarray(labels, dtype=np.int64), names


def _visible(folder: Path) -> list[Path]:
    """The folder's entries in name order, without hidden ones (``.DS_Store``, ``.git``)."""
    return sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=str)


def read_image(path: str | Path) -> Tensor:
    """One PNG/JPEG file as a float image (C, H, W), pixels k = 0..255 as k / 255.

    The colour modes are those of the module docstring; a file that is missing, not an
    image, or of another mode is refused in one line naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FlowmatchError(f"{path}: no such file; check the path")
    pixels = _read_images([path])[0]  # (H, W, C) uint8
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0  # (C, H, W)


def _read_images(files: list[Path]) -> np.ndarray:
    """Decode ``files`` into one uint8 array (N, H, W, C); all must share size and channels."""
    from PIL import Image, UnidentifiedImageError

    arrays = []
    first: tuple[Path, tuple[int, ...]] | None = None
    for f in files:
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            raise FlowmatchError(
                f"{f}: not an image file (expected {', '.join(IMAGE_SUFFIXES)}); remove it "
                "from the folder"
            )
        try:
            with Image.open(f) as img:
                img.load()
                arr = _pixels(img, f)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            msg = " ".join(str(e).split())
            raise FlowmatchError(f"{f}: cannot be read as an image ({msg})") from None
        if first is None:
            first = (f, arr.shape)
        elif arr.shape != first[1]:
            raise FlowmatchError(
                f"{f}: is {_describe(arr.shape)} but {first[0]} is {_describe(first[1])}; "
                "give all images one size and colour mode"
            )
        arrays.append(arr)
    return np.stack(arrays)  # (N, H, W, C)


def _pixels(img, path: Path) -> np.ndarray:
    """One decoded image as uint8 (H, W, C), C = 1 or 3 (see the module for the modes)."""
    mode = img.mode
    if mode in _ALPHA:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if (alpha != 255).any():
            raise FlowmatchError(
                f"{path}: has transparent pixels (mode {mode}); flatten it onto a background"
            )
        img = img.convert(_ALPHA[mode])
    elif mode in _CONVERT:
        img = img.convert(_CONVERT[mode]) if _CONVERT[mode] else img
    else:
        raise FlowmatchError(
            f"{path}: colour mode {mode} is not supported; save it as 8-bit greyscale (L) or RGB"
        )
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _describe(shape: tuple[int, ...]) -> str:
    h, w, c = shape
    return f"{w}x{h} {'greyscale' if c == 1 else 'RGB'}"


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Pixels (N, H, W, C), labels (N,) or None, and class names of an ``.npz`` archive."""
    arrays = npz_arrays(path)
    images = arrays.get("images")
    if images is None:
        raise FlowmatchError(f"{path}: holds no array named 'images'; save it with images=...")
    if images.dtype != np.uint8:
        raise FlowmatchError(
            f"{path}['images']: has dtype {images.dtype} but uint8 pixels 0..255 are expected"
        )
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise FlowmatchError(
            f"{path}['images']: has shape {images.shape} but (N, H, W) or (N, H, W, C) with "
            "N >= 1 and C = 1 or 3 is expected"
        )
    labels = arrays.get("labels")
    if labels is None:
        return images, None, ()
    if labels.dtype.kind not in "iu" or labels.shape != images.shape[:1]:
        raise FlowmatchError(
            f"{path}['labels']: has shape {labels.shape} and dtype {labels.dtype} but "
            f"{images.shape[0]} integer labels (N,) are expected"
        )
    if labels.min() < 0:
        raise FlowmatchError(f"{path}['labels']: has negative labels; number classes 0..K-1")
    k = int(labels.max()) + 1
    return images, labels.astype(np.int64), tuple(str(i) for i in range(k))
