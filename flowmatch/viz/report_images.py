"""The image-run part of the run report: data beside samples, a grid per class, the path as a
strip of images and as a GIF.

All grids of one figure share the training data's grey scale (values outside it are clipped),
so noise, intermediate states and samples are drawn on the same scale as the data.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from flowmatch.viz._page import Section, figure, figures

if TYPE_CHECKING:
    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["IMAGE_SOLVER", "image_sections"]

IMAGE_SOLVER = {"solver": "midpoint", "steps": 20}
"""The solve of image samples (40 NFE): image networks are slow on a CPU."""

IMAGE_GRID = 64  # held-out images (and samples of an unconditional run) in a grid
PER_CLASS = 8  # samples per class of a class-conditional run
PATH_IMAGES = 8  # images followed along the path
PATH_COLUMNS = 6  # times shown in the strip
GIF_MS = 120  # per frame; the last is held a second longer


def image_sections(flow: Flow, info: RunInfo, *, seed: int = 0) -> list[Section]:
    """Sections of an image run's report: samples against data, per class, along the path.

    Args:
        flow: the run's loaded flow; its data have shape (C, H, W).
        info: the run's :class:`~flowmatch.training.runs.RunInfo`.
        seed: the seed of the held-out draw and of the noise.

    Returns:
        The sections, in page order.
    """
    from flowmatch.data.conditions import ConditionSpec

    dataset = info.config.dataset()
    data = dataset.held_out(IMAGE_GRID, torch.Generator().manual_seed(seed))[:IMAGE_GRID]
    train = getattr(dataset, "train_data", None)
    ref = data if train is None else train
    value_range = (float(ref.min()), float(ref.max()))
    record = info.record["data"].get("condition")
    spec = None if record is None else ConditionSpec.from_dict(record)
    options = IMAGE_SOLVER if flow.integrates_ode else {}
    how = f"{options['solver']}, {options['steps']} steps" if options else "layers"
    if spec is not None and spec.kind == "class":
        cond = torch.arange(spec.size).repeat_interleave(PER_CLASS)  # (K * PER_CLASS,)
        x = flow.sample(len(cond), seed=seed, cond=cond, **options)
        rows = f"one row per class ({how})"
        nrow = PER_CLASS
    else:
        cond = None
        x = flow.sample(IMAGE_GRID, seed=seed, **options)
        rows, nrow = f"({how})", None
    grid = _grid(data, value_range, None)
    sections = [
        Section(
            "samples",
            "Samples against data",
            figures(
                figure(grid, "image/png", f"{len(data)} held-out images"),
                figure(_grid(x, value_range, nrow), "image/png", f"{len(x)} samples, {rows}"),
            ),
        )
    ]
    if cond is not None:
        names = spec.names or tuple(str(k) for k in range(spec.size))
        per_class = [
            figure(
                _grid(x[k * PER_CLASS : (k + 1) * PER_CLASS], value_range, PER_CLASS // 2),
                "image/png",
                f"class {k}: {name}",
            )
            for k, name in enumerate(names)
        ]
        sections.append(Section("classes", "Samples per class", figures(*per_class)))
    path_cond = None if cond is None else torch.arange(PATH_IMAGES) % spec.size
    sections.append(_path_section(flow, info, seed, path_cond, value_range, options))
    return sections


def _path_section(
    flow: Flow,
    info: RunInfo,
    seed: int,
    cond: torch.Tensor | None,
    value_range: tuple[float, float],
    options: dict[str, Any],
) -> Section:
    """A few images at several times from noise to data, and the GIF of every step."""
    sol = flow.trajectory(PATH_IMAGES, seed=seed, cond=cond, return_trajectory=True, **options)
    states = sol.trajectory.reshape(-1, PATH_IMAGES, *info.shape).detach().cpu()  # (T, P, C, H, W)
    ts = sol.ts.cpu().numpy() if sol.ts is not None else np.linspace(0, 1, len(states))
    picks = np.unique(np.linspace(0, len(states) - 1, PATH_COLUMNS).round().astype(int))
    strip = states[picks].transpose(0, 1).reshape(-1, *info.shape)  # (P * cols, C, H, W)
    times = ", ".join(f"{ts[k]:.2f}" for k in picks)
    return Section(
        "path",
        "The probability path p_t",
        figures(
            figure(
                _grid(strip, value_range, len(picks)),
                "image/png",
                f"{PATH_IMAGES} images (rows) at t = {times} (columns)",
            ),
            figure(
                _gif([_grid(s, value_range, PATH_IMAGES // 2) for s in states]),
                "image/gif",
                f"the same images at all {len(states)} times, t = 0 to 1",
            ),
        ),
    )


def _grid(x: torch.Tensor, value_range: tuple[float, float], nrow: int | None) -> bytes:
    """A PNG grid of images (N, C, H, W) on the grey scale ``value_range``."""
    from flowmatch.viz import image_grid_bytes

    return image_grid_bytes(x.detach().cpu().numpy(), ".png", nrow, value_range=value_range)


def _gif(frames: list[bytes]) -> bytes:
    """An animated GIF of PNG frames of one size, looping, the last frame held a second."""
    from PIL import Image

    pictures = [Image.open(io.BytesIO(f)) for f in frames]
    durations = [GIF_MS] * len(pictures)
    durations[-1] += 1000
    buf = io.BytesIO()
    pictures[0].save(
        buf, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0
    )
    return buf.getvalue()
