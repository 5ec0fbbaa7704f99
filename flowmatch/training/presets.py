"""Named training recipes (``--preset``): documented sets of config values, chosen by measurement.

A preset names every value its measurement depended on, so a change of the library's defaults
does not change what a preset trains. Values the user gives explicitly override the preset's;
the run saves the resolved config together with the preset's name. How each preset was chosen
(tuning data) and how it does on data never used to choose it (held-out data) is in
``docs/presets.md`` and ``benchmarks/bench_presets.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flowmatch.errors import FlowmatchError, lookup

if TYPE_CHECKING:
    from flowmatch.training.config import TrainConfig

__all__ = ["PRESETS", "Preset", "preset_config", "split_model_fields"]

# what every flow-matching preset fixes about the optimization and the network it was
# measured with (the peers' budget: 5000 AdamW steps of 256 samples, a 3-layer SiLU MLP)
_COMMON: dict[str, Any] = {
    "method": "fm",
    "path": "linear",
    "sigma_min": 0.0,
    "steps": 5000,
    "batch_size": 256,
    "lr": 2e-3,
    "optimizer": "adamw",
    "weight_decay": 0.0,
    "warmup_steps": 100,
    "lr_decay": "cosine",
    "min_lr_ratio": 0.05,
    "grad_clip": 1.0,
    "ema_decay": 0.999,
    "time_uniform_share": 0.0,
    "logit_normal_mean": 0.0,
    "logit_normal_std": 1.0,
    "standardize": True,
    "logit": 0.0,
    "source": "gaussian",
    "name": "mlp",
    "depth": 3,
    "activation": "silu",
    "time_embed_dim": 32,
    "input_features": 0,
    "input_scale": 1.0,
}


@dataclass(frozen=True)
class Preset:
    """A named recipe.

    Attributes:
        summary: one line for ``--help``: what the preset is for.
        values: config fields (those of TrainConfig and ModelConfig, by field name) and their
            values; read-only.
    """

    summary: str
    values: MappingProxyType


def _preset(summary: str, **values: Any) -> Preset:
    return Preset(summary, MappingProxyType({**_COMMON, **values}))


PRESETS: dict[str, Preset] = {
    "few-step": _preset(
        "samples in 1-4 solver steps: exact OT on the whole batch, uniform t, time cap 30",
        coupling="ot",
        ot_batch=0,
        time_sampling="uniform",
        width=128,
        time_max_freq=30.0,
    ),
    "density": _preset(
        "likelihoods by ODE solves: independent coupling, v smooth in t (time cap 30)",
        coupling="independent",
        ot_batch=0,
        time_sampling="uniform",
        width=256,
        time_max_freq=30.0,
    ),
}
"""Preset name -> :class:`Preset`; the names are the choices of ``flowmatch train --preset``."""


def split_model_fields(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split flat config fields into (ModelConfig's, TrainConfig's other fields)."""
    from flowmatch.models import ModelConfig

    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = {k: v for k, v in values.items() if k in model_fields}
    return model, {k: v for k, v in values.items() if k not in model_fields}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The config of preset ``name`` with ``overrides`` on top, its name recorded in ``preset``.

    Args:
        name: a key of :data:`PRESETS`.
        **overrides: config fields by name, flat (``width=64`` as well as ``data="x.npy"``);
            they win over the preset's values.

    Returns:
        A validated :class:`~flowmatch.training.TrainConfig` with ``preset=name``.

    Example:
        >>> cfg = preset_config("few-step", data="moons", steps=100)
        >>> cfg.preset, cfg.coupling, cfg.ot_batch, cfg.steps
        ('few-step', 'ot', 0, 100)
    """
    from flowmatch.models import ModelConfig
    from flowmatch.training.config import TrainConfig

    preset = lookup(PRESETS, name, "--preset")
    if "preset" in overrides:
        raise FlowmatchError("give the preset once, as the name, not also as an override")
    model, rest = split_model_fields({**preset.values, **overrides})
    try:
        cfg = TrainConfig(model=ModelConfig(**model), preset=name, **rest)
    except TypeError as exc:  # an unknown field name
        raise FlowmatchError(f"preset {name!r}: {exc}") from None
    cfg.validate()
    return cfg
