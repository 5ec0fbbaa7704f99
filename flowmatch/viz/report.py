"""One self-contained HTML page per run: config, loss, sample quality, figures, likelihood.

The page needs no network and no other file: every figure and the animation are inline
``data:`` URIs (PNG, GIF), the style sheet is inline, and there is no script. All text from the
run (names, paths, config values) is HTML-escaped. The figures are those of ``flowmatch plot``
(:func:`~flowmatch.viz.run_figures.write_run_figures`) for point data, and image grids (one per
class for a class-conditional run) for image data.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from flowmatch.errors import FlowmatchError, check_int
from flowmatch.viz._page import Section, esc, figures, file_figure, number, page, table

if TYPE_CHECKING:
    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["REPORT_FILE", "build_report"]

REPORT_FILE = "report.html"
"""The report's name in a run folder (the default of ``flowmatch report --out``)."""

LIKELIHOOD_SOLVER = {"solver": "rk4", "steps": 25}
"""The likelihood table's solve: 100 NFE at a fixed cost, where a tight dopri5 can take
several hundred on a flow whose time embedding oscillates."""


def build_report(
    flow: Flow,
    info: RunInfo,
    *,
    evaluation: dict[str, Any] | None = None,
    headline: dict[str, Any] | None = None,
    evaluate: bool = True,
    n: int = 1000,
    seed: int = 0,
) -> str:
    """The HTML text of a run's report.

    Args:
        flow: the run's loaded flow.
        info: the run's :class:`~flowmatch.training.runs.RunInfo`.
        evaluation: the table of ``flowmatch eval --json`` (as
            :func:`~flowmatch.evaluation.eval_table.read_evaluation` returns it), or None.
        headline: a table of a few rows over several draws (``flowmatch eval --rows ... --draws
            K``, as ``flowmatch demo`` leaves it), shown beside ``evaluation``; or None.
        evaluate: without ``evaluation``, compute a small one for point data
            (:func:`~flowmatch.evaluation.eval_table.small_evaluation`); if False, the page
            says how to add it.
        n: samples and held-out points of the figures, the computed table and the likelihood.
        seed: the seed of every draw.

    Returns:
        The page, one self-contained HTML document.
    """
    from flowmatch.evaluation.eval_table import small_evaluation
    from flowmatch.viz.report_quality import quality_section

    check_int(n, "the number of samples n", minimum=2)
    t0 = time.perf_counter()
    images = len(info.shape) == 3
    source = "file" if evaluation is not None else None
    if evaluation is None and evaluate and not images:
        evaluation, source = small_evaluation(flow, info, n=n, seed=seed), "computed"
    with tempfile.TemporaryDirectory(prefix="flowmatch-report-") as tmp:
        folder = Path(tmp)
        if images:
            from flowmatch.viz.report_images import image_sections
            from flowmatch.viz.run_figures import write_loss_figure

            shown = image_sections(flow, info, seed=seed)
            loss = write_loss_figure(info, folder / "loss.png")
        else:  # flowmatch plot's figures, the loss among them
            shown = _figure_sections(flow, info, folder / "figures", n, seed)
            loss = folder / "figures" / "loss.png"
        sections = [
            _config_section(info),
            _loss_section(info, loss),
            quality_section(info, evaluation, source, folder, images, headline),
            *shown,
            _likelihood_section(flow, info, n, seed, images),
        ]
    return _page(info, sections, time.perf_counter() - t0)


# -- figures of point data ---------------------------------------------------------------------
def _figure_sections(flow: Flow, info: RunInfo, out: Path, n: int, seed: int) -> list[Section]:
    """Samples against data, trajectories, p_t and its GIF, and the density of 2-D data; the
    figures (and loss.png) are written into the new folder ``out``."""
    from flowmatch.viz.run_figures import (
        DENSITY_GRID,
        DENSITY_SOLVER,
        TRAJECTORY_TIMES,
        trajectory_options,
        write_run_figures,
    )

    out.mkdir()
    write_run_figures(flow, info, out, n=n, seed=seed)
    options = trajectory_options(flow, {})
    how = f"{options['steps']} steps" if "steps" in options else "the states after each layer"
    sections = [
        Section(
            "samples",
            "Samples against data",
            figures(file_figure(out / "samples.png", f"{n} held-out data points and {n} samples")),
        ),
        Section(
            "trajectories",
            "Trajectories",
            figures(file_figure(out / "trajectories.png", f"particles from noise to data ({how})")),
        ),
        Section(
            "path",
            "The probability path p_t",
            figures(
                file_figure(out / "path.png", "the marginal p_t at a few times t"),
                file_figure(out / "path.gif", f"p_t over {TRAJECTORY_TIMES} times, t = 0 to 1"),
            ),
        ),
    ]
    if (out / "density.png").is_file():
        solve = (
            f"{DENSITY_SOLVER['solver']}, {DENSITY_SOLVER['steps']} steps"
            if flow.integrates_ode
            else "exact log-det"
        )
        grid = f"on a {DENSITY_GRID} x {DENSITY_GRID} grid, exact change of variables ({solve})"
        sections.append(
            Section(
                "density",
                "Model density",
                figures(
                    file_figure(out / "density.png", f"p(x) {grid}"),
                    file_figure(out / "log_density.png", f"log p(x) {grid}"),
                ),
            )
        )
    return sections


# -- likelihood --------------------------------------------------------------------------------
def _likelihood_section(flow: Flow, info: RunInfo, n: int, seed: int, images: bool) -> Section:
    """The mean NLL of held-out points, where exact and cheap; else how to compute it."""
    from flowmatch.likelihood import AUTO_EXACT_MAX_DIM, summarize_nll

    title = "Likelihood"
    dataset = info.config.dataset()
    why = None
    if images:
        why = "an image run's NLL takes Hutchinson's estimate and dequantized pixels"
    elif info.record["data"].get("condition") is not None:
        why = "a conditional run's density depends on the condition"
    elif info.dim > AUTO_EXACT_MAX_DIM:
        why = f"in {info.dim} dimensions the exact divergence is costly"
    elif dataset.quantization is not None:
        why = "its data are discrete (a dequantized bound)"
    command = f"flowmatch logprob {info.run_dir} --data {info.config.data}"
    if why is None:
        try:
            x = dataset.held_out(n, torch.Generator().manual_seed(seed)).to(flow.device)
            if flow.integrates_ode:
                r = flow.log_prob_with_stats(x, seed=seed, divergence="exact", **LIKELIHOOD_SOLVER)
                log_p = r.log_prob
                how = (
                    f"{LIKELIHOOD_SOLVER['solver']}, {LIKELIHOOD_SOLVER['steps']} steps "
                    f"(NFE {r.nfe}), exact divergence"
                )
            else:
                log_p, how = flow.log_prob(x), "exact log-det of the discrete flow"
        except FlowmatchError as exc:  # e.g. a source without a density
            why = str(exc)
    if why is not None:
        return Section(
            "likelihood",
            title,
            f'<p class="note">Not computed here: {esc(why)}. <code>{esc(command)}</code> '
            "prints the mean NLL with its standard error and bits/dim.</p>",
        )
    s = summarize_nll(log_p.detach().cpu(), info.dim)
    header = ["points", "NLL (nats per point)", "± standard error", "bits/dim"]
    row = [number(s.n, "d"), number(s.nll, ".4f"), number(s.stderr, ".4f")]
    row.append(number(s.bits_per_dim, ".4f"))
    return Section(
        "likelihood",
        title,
        f'<p class="note">Held-out points of {esc(info.config.data)}, {esc(how)}; '
        f"<code>{esc(command)}</code> computes it "
        + ("with an adaptive solver.</p>" if flow.integrates_ode else "too.</p>")
        + table(header, [row], text_columns=0),
    )


# -- config, loss and the page -----------------------------------------------------------------
def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) pairs of nested dicts."""
    items: list[tuple[str, Any]] = []
    for key, value in d.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _config_section(info: RunInfo) -> Section:
    """The fields that differ from the defaults, then the whole resolved config (folded)."""
    from flowmatch.training.config import TrainConfig

    defaults = dict(_flatten(dataclasses.asdict(TrainConfig())))
    items = _flatten(dataclasses.asdict(info.config))
    missing = object()
    changed = [(k, v) for k, v in items if defaults.get(k, missing) != v]
    cond = info.record["data"].get("condition")
    facts = f"data shape {tuple(info.shape)}" + ("" if cond is None else f", condition {cond}")
    header = ["field", "value", "default"]
    rows = [[esc(k), _value(v), _value(defaults.get(k, "-"))] for k, v in changed]
    every = table(["field", "value"], [[esc(k), _value(v)] for k, v in items], text_columns=2)
    return Section(
        "config",
        "Config",
        f'<p class="note">As saved in {esc(info.run_dir / "config.json")} ({esc(facts)}); '
        "the fields that differ from the defaults of <code>flowmatch train</code>:</p>"
        + table(header, rows, text_columns=3)
        + f"<details><summary>All {len(items)} fields</summary>{every}</details>",
    )


def _value(v: Any) -> str:
    """A config value as escaped text; an empty string shows as ``""``."""
    return esc('""' if v == "" else v)


def _loss_section(info: RunInfo, figure: Path | None) -> Section:
    """The loss curve ``figure`` and the last logged row of metrics.jsonl."""
    from flowmatch.training.checkpoint import METRICS_FILE
    from flowmatch.training.metrics_log import read_metrics

    with warnings.catch_warnings():  # a torn line: the loss figure's reading warned once
        warnings.simplefilter("ignore")
        rows = [r for r in read_metrics(info.run_dir / METRICS_FILE) if "loss" in r]
    if not rows or figure is None:
        return Section("loss", "Training loss", '<p class="note">No loss logged yet.</p>')
    last = rows[-1]
    facts = (
        f"Step {number(last['step'], 'd')} of {number(info.config.steps, 'd')}: loss "
        f"{number(last['loss'])}, {number(last.get('steps_per_s'), '.1f')} steps/s, "
        f"{number(last.get('elapsed_s'), '.1f')} s of training "
        f"(method {esc(info.config.method)})."
    )
    return Section(
        "loss",
        "Training loss",
        f'<p class="note">{facts}</p>'
        + figures(file_figure(figure, f"the loss of {len(rows)} logged intervals")),
    )


def _page(info: RunInfo, sections: list[Section], seconds: float) -> str:
    from flowmatch._version import __version__

    cfg = info.config
    name = info.run_dir.name or str(info.run_dir)
    data = cfg.data if len(cfg.data) < 40 else Path(cfg.data).name
    meta = (
        f'<p class="meta">Run folder {esc(info.run_dir.absolute())}: {esc(data)}, '
        f"{esc(cfg.method)} with a {esc(cfg.model.name)} model, step {number(info.step, 'd')}. "
        "Time runs from t = 0 (noise N(0, I)) to t = 1 (data).</p>"
    )
    footer = (
        f"Written by flowmatch {esc(__version__)} in {seconds:.1f} s on "
        f"{esc(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}. Self-contained: every "
        "image is inside this file."
    )
    return page(f"flowmatch report: {name}", meta, sections, footer)
