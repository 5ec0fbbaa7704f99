"""The reference classifier that scores image samples: trained once per data set, cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from flowmatch.data.images import ImageDataset
from flowmatch.metrics.classifier import ImageClassifier, fit_classifier
from flowmatch.storage import atomic_write

__all__ = ["CLASSIFIER_SETTINGS", "CLASSIFIER_VERSION", "cache_dir", "reference_classifier"]

# How each set's reference classifier is trained; part of its cache key.
CLASSIFIER_SETTINGS = {
    "digits-images": {"epochs": 30.0, "width": 32, "feature_dim": 64},
    "fashion-mnist": {"epochs": 2.0, "width": 16, "feature_dim": 64},
}
CLASSIFIER_VERSION = 2  # 2: features from the flattened map, not a global average


def cache_dir() -> Path:
    """Where trained reference classifiers are kept: ``$FLOWMATCH_CACHE`` or ~/.cache/flowmatch."""
    return Path(os.environ.get("FLOWMATCH_CACHE", Path.home() / ".cache" / "flowmatch"))


def reference_classifier(
    dataset: ImageDataset, cache: str | Path | None = None, device: str = "cpu"
):
    """The classifier that scores samples of ``dataset``, trained once and cached on disk.

    It is fit on the training split only (see
    :func:`~flowmatch.metrics.classifier.fit_classifier`) and saved as safetensors under a
    name that hashes the data set, its size and the training settings, so a change to any of
    them trains a new one. A cached file that cannot be read back (truncated, not
    safetensors, other shapes) is retrained and atomically replaced, with a warning. Its
    training time and held-out accuracy on each set are in docs/benchmarks.md.

    Args:
        dataset: a labelled image set.
        cache: the cache folder (default: :func:`cache_dir`).
        device: where to train it (if needed) and return it.

    Returns:
        An :class:`~flowmatch.metrics.classifier.ImageClassifier` in eval mode.
    """

    settings = CLASSIFIER_SETTINGS.get(dataset.name, CLASSIFIER_SETTINGS["fashion-mnist"])
    k = dataset.condition.size
    x, y = dataset.train_data, dataset.train_cond
    fingerprint = {
        "name": dataset.name,
        "version": CLASSIFIER_VERSION,
        "settings": settings,
        "shape": list(x.shape),
        "sum": round(float(x.double().sum()), 3),
        "labels": int(y.sum()),
    }
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache) if cache is not None else cache_dir()
    path = folder / f"classifier-{dataset.name}-{key}.safetensors"
    width, feature_dim = settings["width"], settings["feature_dim"]
    if path.is_file():
        net = ImageClassifier(dataset.shape, k, width, feature_dim)
        try:
            net.load_state_dict(load_file(str(path)))
            return net.to(device).eval()
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.warn(
                f"the cached classifier {path} is unreadable ({reason[:120]}); retraining it",
                RuntimeWarning,
                stacklevel=2,
            )
    net = fit_classifier(
        x, y, k, epochs=settings["epochs"], width=width, feature_dim=feature_dim, device=device
    )
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    atomic_write(path, save(state))
    return net
