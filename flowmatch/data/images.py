"""Labelled single-channel image sets: scikit-learn's 8x8 digits and Fashion-MNIST 28x28.

Pixels are floats in [0, 1] of shape (N, 1, H, W) and each image carries its class label
(N,) as the condition c. Both sets are standardized with one mean and std for all pixels
(see :meth:`~flowmatch.data.Standardizer.fit`).

Fashion-MNIST is read from the idx files of Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``, or the folder in ``$FLOWMATCH_FASHION_MNIST``); it is
never downloaded. The idx format is a big-endian header (two zero bytes, a type code, the
number of axes, one 32-bit size per axis) followed by the raw array.

References:
    LeCun et al., "Gradient-Based Learning Applied to Document Recognition" (1998), the idx
    format; Xiao et al., "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
    Learning Algorithms" (2017).
"""

from __future__ import annotations

import gzip
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.dataset import ArrayDataset
from flowmatch.errors import FlowmatchError

__all__ = [
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_FILES",
    "ImageDataset",
    "digits_images",
    "fashion_mnist",
    "read_idx",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(k) for k in range(10))

# idx type codes -> big-endian numpy dtypes
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (gzipped if its name ends in ``.gz``) into a numpy array.

    Args:
        path: the file.

    Returns:
        The array, of the shape and (native-endian) dtype its header announces.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     p = Path(tmp) / "a.idx"
        ...     _ = p.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, *range(6)]))
        ...     read_idx(p).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise FlowmatchError(f"{path}: cannot be read as an idx file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise FlowmatchError(f"{path}: not an idx file (bad magic number {raw[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise FlowmatchError(f"{path}: truncated idx header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise FlowmatchError(
            f"{path}: idx header announces shape {shape} ({expected} bytes) but "
            f"{len(raw) - header} bytes follow; the file is damaged"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


class ImageDataset(ArrayDataset):
    """Labelled images with a fixed training and test split.

    Sampling works as in :class:`~flowmatch.data.ArrayDataset` (training rows drawn with
    replacement, conditions alongside); the test split is the held-out set.

    Args:
        name: the data set's name.
        train: training images (N, C, H, W) in [0, 1].
        train_labels: their labels (N,).
        test: held-out images (M, C, H, W).
        test_labels: their labels (M,).
        class_names: one name per class.
        condition: what ``train_labels`` and ``test_labels`` are, if not class labels (e.g.
            the token ids of captions, :meth:`ConditionSpec.text`); the class names are
            then kept in :attr:`class_names` only.
    """

    per_feature_standardization = False

    def __init__(
        self,
        name: str,
        train: Tensor,
        train_labels: Tensor,
        test: Tensor,
        test_labels: Tensor,
        class_names: tuple[str, ...],
        *,
        condition: ConditionSpec | None = None,
    ) -> None:
        self.name = name
        self.shape = tuple(train.shape[1:])
        self.dim = int(np.prod(self.shape))
        self.class_names = tuple(class_names)
        self.condition = condition or ConditionSpec("class", len(class_names), self.class_names)
        self.train_data, self.test_data = train, test
        self.train_cond = self.condition.check(train_labels, train.shape[0], f"{name} labels")
        self.test_cond = self.condition.check(test_labels, test.shape[0], f"{name} labels")

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, shape={self.shape}, "
            f"train={self.train_data.shape[0]}, test={self.test_data.shape[0]})"
        )


@cache
def _digits_arrays(holdout_fraction: float, split_seed: int) -> tuple[Tensor, ...]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))  # (1797,)
    split = ArrayDataset(x, "digits", holdout_fraction, split_seed, cond=y)
    return split.train_data, split.train_cond, split.test_data, split.test_cond


def digits_images(holdout_fraction: float = 0.2, split_seed: int = 0) -> ImageDataset:
    """scikit-learn's 1797 handwritten digits as 1x8x8 images in [0, 1], labelled 0-9.

    A seeded random 20% is held out (359 images), the rest (1438) is for training.

    Example:
        >>> ds = digits_images()
        >>> ds.shape, ds.train_data.shape[0], ds.test_data.shape[0]
        ((1, 8, 8), 1438, 359)
    """
    train, train_y, test, test_y = _digits_arrays(holdout_fraction, split_seed)
    return ImageDataset("digits-images", train, train_y, test, test_y, DIGIT_CLASSES)


def _fashion_dir(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    return Path(os.environ.get("FLOWMATCH_FASHION_MNIST", FASHION_MNIST_DIR))


@cache
def _fashion_arrays(root: Path) -> tuple[Tensor, ...]:
    missing = [f for pair in FASHION_MNIST_FILES.values() for f in pair if not (root / f).is_file()]
    if missing:
        raise FlowmatchError(
            f"Fashion-MNIST not found: {root} lacks {', '.join(missing)}; install it with "
            "'sudo apt-get install dataset-fashion-mnist' (or point $FLOWMATCH_FASHION_MNIST "
            "at a folder holding the idx files)"
        )
    out = []
    for split in ("train", "test"):
        images_file, labels_file = FASHION_MNIST_FILES[split]
        images = read_idx(root / images_file)
        labels = read_idx(root / labels_file)
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise FlowmatchError(
                f"{root}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
        out.append(torch.from_numpy(images.astype(np.float32) / 255.0)[:, None])  # (N,1,28,28)
        out.append(torch.from_numpy(labels.astype(np.int64)))
    return tuple(out)


def fashion_mnist(root: str | Path | None = None) -> ImageDataset:
    """Fashion-MNIST: 60000 training and 10000 test 1x28x28 images in [0, 1], 10 classes.

    Args:
        root: folder of the four gzipped idx files; by default ``$FLOWMATCH_FASHION_MNIST``
            or ``/usr/share/datasets/fashion-mnist``.

    Raises:
        FlowmatchError: naming the install command if the files are absent.
    """
    train, train_y, test, test_y = _fashion_arrays(_fashion_dir(root).resolve())
    return ImageDataset("fashion-mnist", train, train_y, test, test_y, FASHION_MNIST_CLASSES)
