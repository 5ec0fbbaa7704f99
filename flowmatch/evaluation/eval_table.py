"""The table of ``flowmatch eval --json``: a small one computed in place, or one read back.

Its shape: ``rows`` (one :class:`~flowmatch.evaluation.samples.EvalRow` per solver setting, as
a dict), ``floor`` (W2 and MMD of an independent draw of real data), ``n``, ``time_grid`` and,
for a flow that integrates an ODE, ``curve`` (a fixed-grid solver's W2 at each step count and
the converged row), ``recommended`` and ``tolerance``; ``flowmatch eval`` adds ``straightness``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from flowmatch.errors import FlowmatchError

if TYPE_CHECKING:
    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = [
    "CURVE_SOLVER",
    "DRAWS_FILE",
    "EVAL_FILE",
    "TOLERANCE",
    "is_number",
    "ratio_to_floor",
    "read_evaluation",
    "small_evaluation",
]

EVAL_FILE = "eval.json"
"""The full table ``flowmatch eval RUN --json RUN/eval.json`` (and ``flowmatch demo``) leaves in
a run folder, which the run's report shows."""

DRAWS_FILE = "eval-draws.json"
"""The other table ``--json`` may write into the run folder: a few rows over several draws
(``flowmatch demo``'s headline), which the report shows beside the full one."""

CURVE_SOLVER = "euler"
"""The fixed-grid solver of a computed W2-versus-NFE curve (as ``flowmatch eval``'s default)."""

TOLERANCE = 0.05
"""A computed table recommends the fewest steps within this fraction of dopri5's W2."""


def small_evaluation(flow: Flow, info: RunInfo, *, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``flowmatch eval``'s table on ``n`` held-out points, without the straightness.

    Args:
        flow: the run's loaded flow.
        info: the run's :class:`~flowmatch.training.runs.RunInfo`.
        n: held-out points (and samples per setting).
        seed: the seed of the draws; the data floor's second draw uses ``seed + 1``.

    Returns:
        A dict shaped as ``flowmatch eval --json`` writes it: ``rows``, ``floor``, ``n``,
        ``time_grid`` and, for a flow that integrates an ODE, ``curve``, ``recommended`` and
        ``tolerance``.
    """
    from flowmatch.evaluation.samples import evaluate_flow, recommend_steps, w2_nfe_curve
    from flowmatch.metrics import mmd, wasserstein2

    dataset = info.config.dataset()
    ref = dataset.held_out(n, torch.Generator().manual_seed(seed))
    other = dataset.iid_sample(ref.shape[0], torch.Generator().manual_seed(seed + 1))
    ref, other = ref.reshape(ref.shape[0], -1), other.reshape(other.shape[0], -1)
    rows = evaluate_flow(flow, ref.to(flow.device), seed=seed)
    out: dict[str, Any] = {
        "rows": [dataclasses.asdict(r) for r in rows],
        "floor": {"w2": wasserstein2(other, ref), "mmd": mmd(other, ref)},
        "n": ref.shape[0],
        "time_grid": "uniform",
    }
    if flow.integrates_ode:
        converged = next(r for r in rows if r.solver == "dopri5")
        curve = w2_nfe_curve(flow, ref.to(flow.device), solver=CURVE_SOLVER, seed=seed, known=rows)
        best = recommend_steps(curve, converged.w2, TOLERANCE)
        out["curve"] = {
            "solver": CURVE_SOLVER,
            "rows": [dataclasses.asdict(r) for r in curve],
            "converged": dataclasses.asdict(converged),
        }
        out["recommended"] = None if best is None else dataclasses.asdict(best)
        out["tolerance"] = TOLERANCE
    return out


def read_evaluation(path: Path) -> dict[str, Any]:
    """The table that ``flowmatch eval --json`` wrote to ``path``, checked for what a report shows.

    Raises:
        FlowmatchError: one line naming the file, for a file that is not such a table.
    """
    from flowmatch.storage import StorageError, os_error_reason

    path = Path(path)
    fix = f"remove it, or write it again with flowmatch eval RUN_DIR --json {path}"
    try:
        obj = json.loads(path.read_bytes())
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {os_error_reason(exc, path)}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FlowmatchError(f"{path} is not valid JSON ({exc}); {fix}") from None
    why = _evaluation_problem(obj)
    if why is not None:
        raise FlowmatchError(f"{path} is not a table of flowmatch eval ({why}); {fix}")
    return obj


def is_number(x: Any) -> bool:
    """Whether a JSON value is a number (not a bool, which JSON keeps apart)."""
    return isinstance(x, int | float) and not isinstance(x, bool)


def ratio_to_floor(row: dict[str, Any], floor: dict[str, Any]) -> tuple[float | None, float | None]:
    """A table row's W2 over the floor's, and its standard error where both list paired draws
    (the ratio of the means, :func:`~flowmatch.evaluation.samples.ratio_of_means`); None for
    what a hand-edited table leaves undefined.

    Example:
        >>> floor = {"w2": 0.1, "w2_draws": [0.12, 0.08]}
        >>> [round(v, 6) for v in ratio_to_floor({"w2": 0.2, "w2_draws": [0.18, 0.22]}, floor)]
        [2.0, 0.6]
        >>> ratio_to_floor({"w2": 0.2}, floor)
        (2.0, None)
    """
    from flowmatch.evaluation.samples import ratio_of_means

    if not floor["w2"] > 0:
        return None, None
    values, floors = row.get("w2_draws"), floor.get("w2_draws")
    paired = isinstance(values, list) and isinstance(floors, list) and len(values) == len(floors)
    if paired and all(map(is_number, values + floors)) and all(f > 0 for f in floors):
        return ratio_of_means(values, floors)
    return row["w2"] / floor["w2"], None


def _row_problem(row: Any, where: str, keys: tuple[str, ...]) -> str | None:
    if not isinstance(row, dict):
        return f"{where} is not an object"
    for key in keys:
        if not is_number(row.get(key)):
            return f"{where} has no number '{key}'"
    return None


def _evaluation_problem(obj: Any) -> str | None:
    """What keeps ``obj`` from being a table of ``flowmatch eval --json``, or None."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    rows = obj.get("rows")
    if not isinstance(rows, list) or not rows:
        return "no list 'rows'"
    for i, row in enumerate(rows):
        why = _row_problem(row, f"rows[{i}]", ("nfe", "w2", "mmd"))
        if why is None and not isinstance(row.get("solver"), str):
            why = f"rows[{i}] has no 'solver' name"
        if why is not None:
            return why
    why = _row_problem(obj.get("floor"), "'floor'", ("w2", "mmd"))
    if why is not None:
        return why
    curve = obj.get("curve")
    if curve is not None:
        if not isinstance(curve, dict) or not isinstance(curve.get("rows"), list):
            return "'curve' has no list 'rows'"
        for i, row in enumerate(curve["rows"]):
            why = _row_problem(row, f"curve rows[{i}]", ("nfe", "w2"))
            if why is not None:
                return why
        return _row_problem(curve.get("converged"), "'curve' 'converged'", ("nfe", "w2"))
    return None
