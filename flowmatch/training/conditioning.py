"""Fit a run's model to its data's condition: class count, vector size or spec, in the config."""

from __future__ import annotations

import dataclasses

from flowmatch.data import Dataset
from flowmatch.data.conditions import ConditionSpec
from flowmatch.errors import FlowmatchError
from flowmatch.training.config import TrainConfig

__all__ = ["resolve_condition"]


def resolve_condition(
    cfg: TrainConfig, dataset: Dataset, method
) -> tuple[TrainConfig, ConditionSpec | None]:
    """Decide whether a run is conditional and write the condition's size into its model config.

    A run is conditional when the data has conditions (class labels, observation vectors,
    images, prompts, dicts of them) and ``cfg.conditional`` is true. Then
    ``model.num_classes`` (or ``cond_dim``) is set from the data, or checked against it when
    the user gave it; for images, texts and dicts ``model.condition`` is set to the data's
    spec record (a text's vocabulary included). Otherwise all stay empty.
    The resolved config is what the run folder records, so the model can be rebuilt from it.

    Args:
        cfg: the run's configuration (left unchanged).
        dataset: the training data.
        method: the training method (it must have ``supports_condition`` for conditional data).

    Returns:
        The resolved config (a new one if a size was written) and the data's condition spec
        if the run is conditional, else None.
    """
    spec = dataset.condition if cfg.conditional else None
    m = cfg.model
    if getattr(cfg, "text_word_dropout", 0.0) and (spec is None or not spec.has_text):
        what = f"{spec.kind} conditions" if spec is not None else "no conditions in this run"
        raise FlowmatchError(
            f"--text-word-dropout drops words of text conditions, but {cfg.data} has {what}; "
            "leave it at 0"
        )
    if spec is None:
        if m.is_conditional():
            why = "has no conditions" if dataset.condition is None else "--no-conditional was given"
            raise FlowmatchError(
                f"--num-classes/--cond-dim make a conditional model, but {cfg.data} {why}; "
                "leave them out"
            )
        return cfg, None
    if not getattr(method, "supports_condition", False):
        raise FlowmatchError(
            f"--method {cfg.method} does not train conditional models, but {cfg.data} has "
            f"{spec.kind} conditions; pass --no-conditional to ignore them"
        )
    if spec.kind != "class" and getattr(cfg, "coupling", "independent") != "independent":
        raise FlowmatchError(
            f"--coupling {cfg.coupling} pairs within classes and cannot respect continuous "
            f"conditions such as {cfg.data}'s; use --coupling independent"
        )
    if getattr(cfg, "pairs", ""):
        raise FlowmatchError("--pairs tables carry no conditions; add --no-conditional")
    if spec.kind not in ("class", "vector"):
        if m.num_classes or m.cond_dim:
            raise FlowmatchError(
                f"{cfg.data} has {spec.kind} conditions; drop --num-classes and --cond-dim"
            )
        model = dataclasses.replace(m, condition=spec.to_dict())
        return dataclasses.replace(cfg, model=model), spec
    field = "num_classes" if spec.kind == "class" else "cond_dim"
    flag = "--" + field.replace("_", "-")
    other = "cond_dim" if field == "num_classes" else "num_classes"
    if getattr(m, other):
        raise FlowmatchError(
            f"{cfg.data} has {spec.kind} conditions; drop --{other.replace('_', '-')}"
        )
    given = getattr(m, field)
    if given and given != spec.size:
        raise FlowmatchError(
            f"{flag} {given} does not match {cfg.data}, whose conditions have size {spec.size}; "
            f"leave {flag} out"
        )
    model = dataclasses.replace(m, **{field: spec.size})
    return dataclasses.replace(cfg, model=model), spec
