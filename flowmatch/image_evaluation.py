"""Quality of class-conditional image samples: classifier accuracy and Fréchet distance.

For each sampling setting (guidance scale w, solver and steps) the model draws the same
number of images of every class; a classifier trained on the real training split labels
them, and its penultimate features give a Fréchet distance to the held-out split. The same
two numbers for real data (held-out accuracy; Fréchet distance of as many *training* images
to the held-out split) say what a perfect generator would score at this sample size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.metrics.classifier import ImageClassifier, classify
from flowmatch.metrics.frechet import frechet_distance

__all__ = ["ImageQuality", "evaluate_class_conditional", "real_data_quality"]


@dataclass
class ImageQuality:
    """One row: how samples drawn one way score.

    Attributes:
        label: what was measured ("real data", or the sampling setting).
        guidance: the guidance scale w (None: plain conditional sampling, i.e. w = 1).
        solver: ODE solver ("" for real data).
        steps: solver steps (0 for real data).
        nfe: function evaluations per sample (each costs two network calls under guidance).
        n: number of images scored.
        accuracy: share of images the classifier assigns to their intended class.
        frechet: Fréchet distance (squared) to the held-out split in classifier features.
        seconds: sampling time.
    """

    label: str
    guidance: float | None
    solver: str
    steps: int
    nfe: int
    n: int
    accuracy: float
    frechet: float
    seconds: float


def _score(net: ImageClassifier, x: Tensor, labels: Tensor, ref_feats: Tensor) -> tuple:
    pred, feats = classify(net, x)
    return float((pred.cpu() == labels.cpu()).float().mean()), frechet_distance(feats, ref_feats)


def real_data_quality(
    dataset, net: ImageClassifier, n: int, seed: int = 0
) -> tuple[ImageQuality, ImageQuality]:
    """Reference rows: the classifier's held-out accuracy, and the real-data Fréchet floor.

    Args:
        dataset: a labelled image set (``train_data``, ``train_cond``, ``test_data``, ...).
        net: the reference classifier.
        n: training images drawn (without replacement) for the floor; use the sample count.
        seed: seed of that draw.

    Returns:
        The held-out row (the classifier's accuracy on the held-out split; no Fréchet
        distance, NaN) and the floor row (n training images against the held-out split).
    """
    pred, ref_feats = classify(net, dataset.test_data)
    held = ImageQuality(
        "real held-out", None, "", 0, 0, dataset.test_data.shape[0],
        float((pred == dataset.test_cond).float().mean()), float("nan"), 0.0,
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    m = min(n, dataset.train_data.shape[0])
    idx = torch.randperm(dataset.train_data.shape[0], generator=g)[:m]
    acc, fd = _score(net, dataset.train_data[idx], dataset.train_cond[idx], ref_feats)
    floor = ImageQuality("real train", None, "", 0, 0, m, acc, fd, 0.0)
    return held, floor


def evaluate_class_conditional(
    flow,
    dataset,
    net: ImageClassifier,
    *,
    guidance_scales: tuple[float | None, ...] = (None, 2.0),
    settings: tuple[tuple[str, int], ...] = (("midpoint", 10),),
    n: int = 1000,
    seed: int = 0,
    batch_size: int = 500,
) -> list[ImageQuality]:
    """Score class-conditional samples at every guidance scale and solver setting.

    Labels are 0, 1, ..., K-1, 0, 1, ... (n of them, balanced), and the same noise seed is
    used for every setting, so rows differ only in how the ODE is solved. Samples are
    clipped to the training data's range (as when showing them) before the classifier sees
    them.

    Args:
        flow: a class-conditional :class:`~flowmatch.FlowModel`.
        dataset: its labelled image set.
        net: the reference classifier.
        guidance_scales: the scales w; None samples v_c alone (the same as w = 1).
        settings: (solver, steps) pairs.
        n: images per row.
        seed: noise seed.
        batch_size: images sampled at once.

    Returns:
        One :class:`ImageQuality` per (w, setting).
    """
    k = dataset.condition.size
    labels = torch.arange(n) % k  # (n,)
    lo, hi = float(dataset.train_data.min()), float(dataset.train_data.max())
    _, ref_feats = classify(net, dataset.test_data)
    rows = []
    for w in guidance_scales:
        for solver, steps in settings:
            g = torch.Generator().manual_seed(seed)
            start, parts, nfe = time.perf_counter(), [], 0
            for b in range(0, n, batch_size):
                c = labels[b : b + batch_size]
                sol = flow.sample_trajectory(
                    c.shape[0], cond=c, guidance=w, solver=solver, steps=steps,
                    generator=g, return_trajectory=False,
                )  # fmt: skip
                parts.append(sol.x.clamp(lo, hi))
                nfe = sol.nfe
            seconds = time.perf_counter() - start
            acc, fd = _score(net, torch.cat(parts), labels, ref_feats)
            name = f"w={'1 (none)' if w is None else f'{w:g}'} {solver} x{steps}"
            rows.append(ImageQuality(name, w, solver, steps, nfe, n, acc, fd, seconds))
    return rows
