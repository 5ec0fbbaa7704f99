"""Tests for flowmatch.viz.report: every section, every image inline and valid, nothing fetched,
text escaped, an image run's grids per class, and the page rendered by headless Chromium."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from PIL import Image

import flowmatch
from flowmatch.errors import FlowmatchError
from flowmatch.evaluation.eval_table import read_evaluation
from flowmatch.viz.report import build_report

N = 200  # samples and held-out points: enough for every figure, quick to draw
SECTIONS_2D = ["config", "loss", "quality", "samples", "trajectories", "path", "density"]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


class Page(HTMLParser):
    """The parts of a page the tests look at: section ids, images, links and script tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []  # every src, href, action... other than an <img>'s src
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "img":
            self.images.append(a)
        self.links += [v for k, v in a.items() if k in ("href", "action", "poster", "data")]
        if tag != "img" and "src" in a:
            self.links.append(a["src"])


def decoded(img: dict[str, str]) -> Image.Image:
    """The picture of an ``<img>`` whose src is a base64 data: URI; checks its MIME type."""
    match = re.fullmatch(r"data:image/(png|gif);base64,([A-Za-z0-9+/=]+)", img["src"])
    assert match, img["src"][:60]
    data = base64.b64decode(match[2], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" if match[1] == "png" else data[:6] == b"GIF89a"
    Image.open(io.BytesIO(data)).verify()  # raises on a truncated or corrupt file
    picture = Image.open(io.BytesIO(data))
    assert picture.format == match[1].upper() and picture.width > 20 and picture.height > 20
    return picture


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    tiny = flowmatch.ModelConfig(width=16, depth=1)
    flowmatch.train(flowmatch.TrainConfig(data="moons", steps=40, log_every=10, model=tiny), out)
    return out


@pytest.fixture(scope="module")
def page(run) -> str:
    flow, info = flowmatch.load_run(run)
    return build_report(flow, info, n=N, seed=0)


def test_the_report_of_a_2d_run_holds_every_section(page):
    parsed = Page(page)
    assert parsed.sections == [*SECTIONS_2D, "likelihood"]
    assert "<table>" in page and "dopri5" in page and "data floor" in page
    assert f"Computed for this report on {N} held-out points" in page
    assert "W2 vs NFE" not in page  # the curve is a picture, its title inside it
    assert "NLL (nats per point)" in page and "Not computed here" not in page
    assert "model.width" in page and "Step 40 of 40" in page


def test_every_image_is_an_inline_png_or_gif_and_nothing_is_fetched(page):
    parsed = Page(page)
    pictures = [decoded(img) for img in parsed.images]
    # loss, W2-vs-NFE, samples, trajectories, p_t, its GIF, density, log-density
    assert len(pictures) == 8
    gifs = [p for p in pictures if p.format == "GIF"]
    assert len(gifs) == 1 and gifs[0].n_frames > 10
    assert all(img["alt"] for img in parsed.images)
    assert all(link.startswith("#") for link in parsed.links), parsed.links
    assert not {"script", "link", "iframe", "object", "embed"} & parsed.tags
    assert not re.search(r"https?://|url\(|@import", page)


def test_text_from_the_run_is_escaped_and_no_table_says_how_to_add_one(run, tmp_path):
    odd = tmp_path / 'a<b>&"c'
    shutil.copytree(run, odd)
    flow, info = flowmatch.load_run(odd)
    text = build_report(flow, info, n=50, evaluate=False)
    assert "a&lt;b&gt;&amp;&quot;c" in text
    assert '<b>&"' not in text and "<b>" not in text
    assert "Not computed for this report" in text and "dopri5" not in text
    command = f"flowmatch eval {odd} --json {odd / 'eval.json'}"
    assert html.escape(command) in text


def test_the_table_of_eval_json_is_what_the_page_shows(run, tmp_path):
    from flowmatch.cli import main
    from flowmatch.viz.report_quality import quality_section

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    argv = ["eval", str(copy), "--n", "100", "--json", str(copy / "eval.json")]
    assert main(argv) == 0
    table = read_evaluation(copy / "eval.json")
    _, info = flowmatch.load_run(copy)
    body = quality_section(info, table, "file", tmp_path, False).body
    assert f"From {copy / 'eval.json'} (100 held-out points)" in body
    for row in table["rows"]:
        assert f"<td>{row['w2']:.4f}</td>" in body
    assert "Straightness" in body
    assert "Recommended: euler with" in body or "None of these step counts" in body
    assert len(Page(body).images) == 1  # the W2-vs-NFE curve


@pytest.mark.parametrize(
    "content, why",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"rows": []}', "no list 'rows'"),
        ('{"rows": [{"solver": "euler", "nfe": 1, "w2": "x", "mmd": 0}]}', "no number 'w2'"),
        ('{"rows": [{"solver": "euler", "nfe": 1, "w2": 1, "mmd": 0}]}', "'floor'"),
    ],
)
def test_a_damaged_eval_json_is_one_line_naming_the_file(tmp_path, content, why):
    path = tmp_path / "eval.json"
    path.write_text(content)
    with pytest.raises(FlowmatchError, match=re.escape(why)) as err:
        read_evaluation(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_an_image_run_gets_a_grid_per_class_and_a_gif_of_its_path(tmp_path):
    from flowmatch.cli import main

    run = tmp_path / "digits"
    argv = ["train", "--data", "digits-images", "--model", "unet", "--channels", "8",
            "--levels", "1", "--steps", "4", "--batch-size", "16", "--log-every", "2",
            "--threads", "1", "--out", str(run)]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    flow, info = flowmatch.load_run(run)
    text = build_report(flow, info, n=50)
    parsed = Page(text)
    assert parsed.sections == [
        "config",
        "loss",
        "quality",
        "samples",
        "classes",
        "path",
        "likelihood",
    ]
    assert "flowmatch eval-images" in text  # no table is computed for images
    classes = re.findall(r"<figcaption>class (\d+): ", text)
    assert classes == [str(k) for k in range(10)]
    pictures = [decoded(img) for img in parsed.images]
    assert [p.format for p in pictures].count("GIF") == 1
    gif = next(p for p in pictures if p.format == "GIF")
    assert gif.n_frames > 5


# -- the page in a browser ---------------------------------------------------------------------
CHECK = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || (e.target && e.target.tagName) || "error");
}, true);
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  }
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
  document.body.setAttribute("data-errors", window.__errors.join(" | ") || "none");
});
</script>"""
"""Put before the page's own content (by the test, never in the report): counts the images
that loaded and the errors (scripts, resources) once the page has loaded."""


def browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with no network (every host unresolvable) and a fresh profile."""
    if BROWSER is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def loaded(tmp_path: Path, text: str, name: str) -> tuple[str, str]:
    """(images loaded "N/M", errors) of ``text`` rendered with :data:`CHECK` in front."""
    path = tmp_path / name
    path.write_text(text.replace("<head>", "<head>\n" + CHECK, 1), encoding="utf-8")
    dom = browser(tmp_path, "--dump-dom", path.as_uri()).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    images = re.search(r'data-images-loaded="([^"]*)"', body[1])
    errors = re.search(r'data-errors="([^"]*)"', body[1])
    assert images and errors, body[0]
    return images[1], errors[1]


def test_chromium_loads_every_image_without_errors(page, tmp_path):
    assert loaded(tmp_path, page, "report.html") == ("8/8", "none")
    # the same check fails on a page with a broken image and one fetched from the network
    broken = page.replace("</body>", '<img src="data:image/png;base64,AAAA" alt="x"></body>')
    broken = broken.replace("</body>", '<img src="https://example.com/a.png" alt="y"></body>')
    images, errors = loaded(tmp_path, broken, "broken.html")
    assert images == "8/10" and errors.count("IMG") == 2


def test_chromium_draws_the_page(page, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    browser(tmp_path, "--hide-scrollbars", "--window-size=1200,3000", f"--screenshot={shot}",
            path.as_uri())  # fmt: skip
    picture = Image.open(shot).convert("L")
    assert picture.size == (1200, 3000)
    dark = sum(picture.histogram()[:200]) / (1200 * 3000)
    assert dark > 0.02  # text, tables and figures, not a blank page
    colors = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24)
    assert len(colors) > 200  # the figures' colors


def test_a_table_with_a_diverged_row_is_read_and_shown(run, tmp_path):
    from flowmatch.viz.report_quality import quality_section

    # flowmatch eval writes a diverged solve as Infinity, which JSON readers accept
    path = tmp_path / "eval.json"
    row = {"solver": "euler", "steps": 1, "nfe": 1, "w2": float("inf"), "mmd": float("inf")}
    path.write_text(json.dumps({"rows": [row], "floor": {"w2": 0.1, "mmd": 0.0}, "n": 9}))
    table = read_evaluation(path)
    _, info = flowmatch.load_run(run)
    section = quality_section(info, table, "file", tmp_path, False)
    assert "<td>inf</td>" in section.body and "(9 held-out points)" in section.body


def test_a_table_of_several_draws_says_its_w2_are_means(run, tmp_path):
    from flowmatch.viz.report_quality import quality_section

    _, info = flowmatch.load_run(run)
    row = {"solver": "euler", "steps": 1, "nfe": 1, "w2": 0.2, "mmd": 0.0}
    table = {"rows": [row], "floor": {"w2": 0.1, "mmd": 0.0}, "n": 9}
    assert "independent draws" not in quality_section(info, table, "file", tmp_path, False).body
    section = quality_section(info, {**table, "draws": 3}, "file", tmp_path, False)
    assert "mean over 3 independent draws" in section.body


def test_the_headline_draws_are_shown_with_the_ratio_of_their_means(run, tmp_path):
    from flowmatch.viz.report_quality import quality_section

    _, info = flowmatch.load_run(run)
    row = {"solver": "euler", "steps": 1, "nfe": 1, "w2": 0.2, "mmd": 0.0}
    table = {"rows": [row], "floor": {"w2": 0.1, "mmd": 0.0}, "n": 9}
    head = {"solver": "heun", "steps": 2, "nfe": 4, "w2": 0.25, "mmd": 0.0, "w2_sd": 0.07}
    draws = {
        "rows": [{**head, "w2_draws": [0.2, 0.3]}],
        "floor": {"w2": 0.125, "mmd": 0.0, "w2_sd": 0.035, "w2_draws": [0.1, 0.15]},
        "n": 9,
        "draws": 2,
    }
    assert "eval-draws.json" not in quality_section(info, table, "file", tmp_path, False).body
    body = quality_section(info, table, "file", tmp_path, False, draws).body
    assert "over 2 independent draws" in body and "eval-draws.json" in body
    assert "<td>2.00</td>" in body  # 0.25 / 0.125: the ratio of the means
    # a hand-edited file: draws that are not numbers leave the ratio plain, without its error
    draws["rows"][0]["w2_draws"] = ["a", 0.3]
    body = quality_section(info, table, "file", tmp_path, False, draws).body
    assert "<td>2.00</td><td>-</td>" in body
