"""Quality of class-conditional image samples: classifier accuracy and Fréchet distance.

A run trained on captions is scored the same way, each sample prompted with a phrasing of
its class, one row per set of phrasings (see :func:`evaluate_class_conditional`).

For each sampling setting (guidance scale w, solver and steps) the model draws the same
number of images of every class; a classifier trained on the real training split labels
them, and its penultimate features give a Fréchet distance to a reference set.

The reference set R is the held-out split less n of its images (A, drawn once by a fixed
seed) when it holds at least 2n; then the "real held-out" row scores A against R, the same
sizes as the generated rows, with images neither the classifier nor the generator saw: what
a generator of fresh draws from the data distribution would score, sample-size bias
included. (Fashion-MNIST: 10000 held-out images.) A smaller held-out split (the digits: 359)
is used whole as R, and the "real held-out" row then gives only the classifier's held-out
accuracy: half of it would be too few images for a Fréchet distance in 64 features.
The "real train" row scores n *training* images against R. It is not a floor: the
classifier was fit to those images, so their features sit further from held-out features
than fresh images' do, and a good generator scores below it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.data.captions import PHRASINGS, CaptionedImages
from flowmatch.flows.continuous import FlowModel
from flowmatch.metrics.classifier import ImageClassifier, classify
from flowmatch.metrics.frechet import frechet_distance

__all__ = [
    "ImageQuality",
    "evaluate_class_conditional",
    "real_data_quality",
    "reference_split",
]


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
        phrasing: the set of phrasings of a prompted run's row (``training`` or
            ``held-out``), else "".
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
    phrasing: str = ""


def _score(net: ImageClassifier, x: Tensor, labels: Tensor, ref_feats: Tensor) -> tuple:
    pred, feats = classify(net, x)
    return float((pred.cpu() == labels.cpu()).float().mean()), frechet_distance(feats, ref_feats)


def reference_split(dataset, n: int, seed: int = 0) -> tuple[Tensor | None, Tensor]:
    """Held-out indices: (A, R), n real reference images and the reference set.

    When the held-out split has at least 2n images, a random A of n of them (fixed by
    ``seed``) is set aside and R is the rest; otherwise A is None and R is the whole split.
    Every row of an evaluation measures against the same R.

    Returns:
        Indices of A ((n,) or None) and of R into ``dataset.test_data``.
    """
    size = dataset.test_data.shape[0]
    if size < 2 * n:
        return None, torch.arange(size)
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return perm[:n], perm[n:]


def real_data_quality(
    dataset, net: ImageClassifier, n: int, seed: int = 0
) -> tuple[ImageQuality, ImageQuality]:
    """Reference rows: n real training images, and real held-out images, against R.

    Args:
        dataset: a labelled image set (``train_data``, ``train_cond``, ``test_data``, ...).
        net: the reference classifier.
        n: images per row, the number generated per setting.
        seed: seed of the draw of the training images.

    Returns:
        The "real train" row (training accuracy; the distance memorized training images
        get) and the "real held-out" row: the n images A against R (held-out accuracy and
        the distance of fresh real images, which a perfect generator would match), or, for
        a held-out split under 2n images, the accuracy on all of it and no distance (NaN).
    """
    idx_a, idx_r = reference_split(dataset, n)
    _, ref_feats = classify(net, dataset.test_data[idx_r])
    g = torch.Generator().manual_seed(seed)
    m = min(n, dataset.train_data.shape[0])
    idx = torch.randperm(dataset.train_data.shape[0], generator=g)[:m]
    acc, fd = _score(net, dataset.train_data[idx], dataset.train_cond[idx], ref_feats)
    train = ImageQuality("real train", None, "", 0, 0, m, acc, fd, 0.0)
    if idx_a is None:
        pred, _ = classify(net, dataset.test_data)
        acc, fd = float((pred == dataset.test_cond).float().mean()), float("nan")
        held = ImageQuality("real held-out", None, "", 0, 0, idx_r.shape[0], acc, fd, 0.0)
    else:
        acc, fd = _score(net, dataset.test_data[idx_a], dataset.test_cond[idx_a], ref_feats)
        held = ImageQuality("real held-out", None, "", 0, 0, n, acc, fd, 0.0)
    return train, held


def evaluate_class_conditional(
    flow: FlowModel,
    dataset,
    net: ImageClassifier,
    *,
    guidance_scales: tuple[float | None, ...] = (None, 2.0),
    settings: tuple[tuple[str, int], ...] = (("midpoint", 10),),
    n: int = 1000,
    seed: int = 0,
    batch_size: int = 500,
    phrasings: tuple[str, ...] | None = None,
) -> list[ImageQuality]:
    """Score class-conditional samples at every guidance scale and solver setting.

    Labels are 0, 1, ..., K-1, 0, 1, ... (n of them, balanced), and the same noise seed is
    used for every setting, so rows differ only in how the ODE is solved. Samples are
    clipped to the training data's range (as when showing them) before the classifier sees
    them. The Fréchet distance is to the reference set R of :func:`reference_split`, as in
    :func:`real_data_quality`.

    A run trained on captions (``dataset`` a :class:`~flowmatch.data.captions.CaptionedImages`)
    is asked for the classes by prompts: sample i gets a phrasing of class ``labels[i]``
    alone (no attribute words; see
    :meth:`~flowmatch.data.captions.CaptionScheme.class_prompts`), drawn from ``seed``, so
    every scale and setting sees the same prompts. Each set of ``phrasings``
    (:data:`~flowmatch.data.captions.PHRASINGS`: ``training``, the sentence shapes of the
    training captions; ``held-out``, shapes never trained on) gets its own rows, with the
    same noise; accuracy is on the prompted class.

    Args:
        flow: a class-conditional (or caption-conditional) :class:`~flowmatch.FlowModel`.
        dataset: its labelled (or captioned) image set.
        net: the reference classifier of the images labelled by class.
        guidance_scales: the scales w; None samples v_c alone (the same as w = 1).
        settings: (solver, steps) pairs.
        n: images per row.
        seed: noise seed (and the prompts' seed).
        batch_size: images sampled at once.
        phrasings: names of the phrasing sets of a captioned set, a row each (None: all).

    Returns:
        One :class:`ImageQuality` per (w, setting), or per (w, setting, phrasing set) of a
        captioned set, each with its ``phrasing``.
    """
    captioned = isinstance(dataset, CaptionedImages)
    if phrasings is not None and not captioned:
        raise ValueError("phrasings are for a captioned data set; this one has class labels")
    k = len(dataset.scheme.nouns) if captioned else dataset.condition.size
    labels = torch.arange(n) % k  # (n,)
    conditions: dict[str, Tensor | list[str]] = {"": labels}
    if captioned:
        conditions = {
            name: dataset.scheme.class_prompts(labels.tolist(), PHRASINGS[name], seed)
            for name in (PHRASINGS if phrasings is None else phrasings)
        }
    return _sample_rows(
        flow, dataset, net, conditions, labels, guidance_scales, settings, seed, batch_size
    )


def _sample_rows(
    flow: FlowModel,
    dataset,
    net: ImageClassifier,
    conditions: dict[str, Tensor | list[str]],
    labels: Tensor,
    guidance_scales: tuple[float | None, ...],
    settings: tuple[tuple[str, int], ...],
    seed: int,
    batch_size: int,
) -> list[ImageQuality]:
    """A row per (w, setting, named conditions): n samples, one per row of the conditions
    (labels or prompts), scored against their intended classes ``labels`` (n,)."""
    n = labels.shape[0]
    lo, hi = float(dataset.train_data.min()), float(dataset.train_data.max())
    _, ref_feats = classify(net, dataset.test_data[reference_split(dataset, n)[1]])  # R
    rows = []
    for w in guidance_scales:
        for solver, steps in settings:
            for phrasing, cond in conditions.items():
                g = torch.Generator().manual_seed(seed)
                start, parts, nfe = time.perf_counter(), [], 0
                for b in range(0, n, batch_size):
                    c = cond[b : b + batch_size]
                    sol = flow.trajectory(
                        len(c), cond=c, guidance=w, solver=solver, steps=steps,
                        generator=g, return_trajectory=False,
                    )  # fmt: skip
                    parts.append(sol.x.clamp(lo, hi))
                    nfe = sol.nfe
                seconds = time.perf_counter() - start
                acc, fd = _score(net, torch.cat(parts), labels, ref_feats)
                name = f"w={'1 (none)' if w is None else f'{w:g}'} {solver} x{steps}"
                name += f", {phrasing} phrasings" if phrasing else ""
                rows.append(
                    ImageQuality(name, w, solver, steps, nfe, n, acc, fd, seconds, phrasing)
                )
    return rows
