"""The sample-quality part of the run report: the table of W2 and MMD per solver, the data
floor, and the W2-versus-NFE curve."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.evaluation.eval_table import (
    DRAWS_FILE,
    EVAL_FILE,
    TOLERANCE,
    is_number,
    ratio_to_floor,
)
from flowmatch.viz._page import Section, esc, figures, file_figure, number, table

if TYPE_CHECKING:
    from flowmatch.training.runs import RunInfo

__all__ = ["EVAL_FILE", "quality_section"]


def quality_section(
    info: RunInfo,
    evaluation: dict[str, Any] | None,
    source: str | None,
    folder: Path,
    images: bool,
    headline: dict[str, Any] | None = None,
) -> Section:
    """The table of W2 and MMD per solver, the data floor, and the W2-versus-NFE curve; with
    ``headline`` (a table of a few rows over several draws), those rows' means beside it."""
    run = info.run_dir
    command = f"flowmatch eval {run} --json {run / EVAL_FILE}"
    title = "Sample quality"
    if evaluation is None:
        body = (
            '<p class="note">Not computed for this report. '
            f"<code>{esc(command)}</code> writes the table (W2 and MMD per solver, the "
            "W2-vs-NFE curve, the straightness) into the run folder, and the next report "
            "shows it.</p>"
        )
        if images:
            body += (
                f'<p class="note"><code>{esc(f"flowmatch eval-images {run}")}</code> scores a '
                "class-conditional image run by class accuracy and Fréchet distance.</p>"
            )
        if headline is not None:
            body += _draws_html(headline)
        return Section("quality", title, body)
    floor = evaluation["floor"]
    if source == "file":
        where = esc(f"From {run / EVAL_FILE} ({evaluation.get('n', '?')} held-out points).")
    else:
        where = (
            f"Computed for this report on {esc(evaluation['n'])} held-out points; "
            f"<code>{esc(command)}</code> writes the full table (and the straightness) into "
            "the run folder, and a later report shows it instead."
        )
    rows = [
        [
            esc(r["solver"]),
            number(r.get("steps")),
            number(r["nfe"], "d"),
            number(r["w2"], ".4f"),
            number(r["w2"] / floor["w2"], ".2f") if floor["w2"] > 0 else "-",
            number(r["mmd"], ".2e"),
            number(r.get("seconds"), ".2f"),
        ]
        for r in evaluation["rows"]
    ]
    rows.append(
        [
            "data floor",
            "",
            "",
            number(floor["w2"], ".4f"),
            "1.00",
            number(floor["mmd"], ".2e"),
            "",
        ]
    )
    header = ["solver", "steps", "NFE", "W2", "W2 / floor", "MMD", "seconds"]
    draws = evaluation.get("draws")
    means = (
        f" W2 (the floor's too) is the mean over {esc(draws)} independent draws of held-out "
        "points, noise and the floor's data; MMD is the first draw's."
        if draws
        else ""
    )
    body = (
        f'<p class="note">{where} W2 and MMD of as many samples as held-out points, '
        "against those points, with one noise seed for every solver; the data floor is the "
        f"score of an independent draw of real data (what a perfect model gets).{means}</p>"
        + table(header, rows)
    )
    if headline is not None:
        body += _draws_html(headline)
    body += _curve_html(evaluation, folder)
    stats = evaluation.get("straightness")
    if isinstance(stats, dict):
        body += (
            '<p class="note">Straightness of the trajectories (the network\'s units): '
            f"S / E|x1 - x0|^2 = {number(stats.get('normalized_straightness'))}, "
            f"normalized path energy {number(stats.get('normalized_path_energy'))} "
            "(1 for straight paths of the optimal coupling).</p>"
        )
    return Section("quality", title, body)


def _draws_html(draws: dict[str, Any]) -> str:
    """The rows of a table over several draws: mean W2 and spread, and the ratio of the means
    to the floor's with its standard error."""
    floor = draws["floor"]
    rows = [_draws_row(r, *ratio_to_floor(r, floor)) for r in draws["rows"]]
    rows.append(_draws_row({**floor, "solver": "data floor"}, 1.0, None))
    header = ["solver", "steps", "NFE", "mean W2", "sd", "W2 / floor", "its standard error"]
    return (
        f'<p class="note">The headline rows over {esc(draws.get("draws", 1))} independent draws '
        f"of held-out points, noise and the floor's data (from {esc(DRAWS_FILE)}): one draw's "
        "W2 varies by about 25% on moons, so these means are what to compare with the floor; "
        "W2 / floor is the ratio of the means.</p>" + table(header, rows)
    )


def _draws_row(row: dict[str, Any], ratio: float | None, error: float | None) -> list[str]:
    """One line of :func:`_draws_html`'s table, as HTML cells."""
    return [
        esc(row["solver"]),
        number(row.get("steps")),
        number(row.get("nfe"), "d"),
        number(row["w2"], ".4f"),
        number(row.get("w2_sd"), ".4f"),
        number(ratio, ".2f"),
        number(error, ".2f"),
    ]


def _curve_html(evaluation: dict[str, Any], folder: Path) -> str:
    """The W2-versus-NFE figure and the recommended step count, if the table has a curve."""
    from flowmatch.viz.nfe import plot_w2_nfe

    curve = evaluation.get("curve")
    if curve is None:
        return ""
    solver = str(curve.get("solver", "fixed grid"))
    conv = curve["converged"]
    others = [
        (str(r["solver"]), r["nfe"], r["w2"])
        for r in evaluation["rows"]
        if r["solver"] not in (solver, "dopri5")
    ]
    path = plot_w2_nfe(
        [r["nfe"] for r in curve["rows"]],
        [r["w2"] for r in curve["rows"]],
        folder / "w2_nfe.png",
        solver=solver,
        converged=(conv["nfe"], conv["w2"]),
        floor=evaluation["floor"]["w2"],
        others=others,
        title=f"W2 vs NFE ({solver}; converged: {conv.get('solver', 'dopri5')})",
    )
    best = evaluation.get("recommended")
    tolerance = evaluation.get("tolerance", TOLERANCE)
    if isinstance(best, dict) and is_number(tolerance):
        advice = (
            f"Recommended: {solver} with {number(best.get('steps'))} "
            f"step{'' if best.get('steps') == 1 else 's'} "
            f"(NFE {number(best.get('nfe'))}), W2 {number(best.get('w2'), '.4f')}, within "
            f"{number(100 * tolerance, '.0f')}% of the converged W2."
        )
    else:
        advice = "None of these step counts is within the tolerance of the converged W2."
    return figures(
        file_figure(path, f"W2 of {solver} against its NFE, beside the other solvers")
    ) + (f'<p class="note">{advice}</p>')
