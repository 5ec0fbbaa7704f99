"""``flowmatch report``: one page created in one piece, never over an old one unless asked, and
bad input refused in one line with nothing written."""

import argparse
import errno
import importlib
import os
import shutil

import pytest

import flowmatch
from flowmatch.cli import demo, main
from tests.cli.helpers import error_line

QUICK = ["--n", "50", "--no-eval"]  # the page without the computed table: the quickest one


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-report") / "run"
    tiny = flowmatch.ModelConfig(width=16, depth=1)
    flowmatch.train(flowmatch.TrainConfig(data="moons", steps=20, log_every=10, model=tiny), out)
    return out


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    """A fresh copy of the trained run, for a test that writes into it; its density maps are
    drawn on a coarse grid (these tests are about the files, tests/viz about the page)."""
    from flowmatch.viz import run_figures

    monkeypatch.setattr(run_figures, "DENSITY_GRID", 16)
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_report_creates_the_page_once_and_replaces_it_only_when_asked(run, capsys):
    before = names(run)
    assert main(["report", str(run), *QUICK]) == 0
    page = run / "report.html"
    assert capsys.readouterr().out.strip() == str(page)
    assert names(run) == sorted([*before, "report.html"])  # and no temporary file
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    inode = page.stat().st_ino
    assert main(["report", str(run), *QUICK]) == 2
    assert "--overwrite" in error_line(capsys)
    assert page.read_text(encoding="utf-8") == text and page.stat().st_ino == inode
    assert main(["report", str(run), *QUICK, "--overwrite"]) == 0
    assert page.stat().st_ino != inode  # a new file moved into place, not rewritten in place
    assert names(run) == sorted([*before, "report.html"])


def test_report_reads_the_runs_eval_json(run, tmp_path, capsys):
    assert main(["eval", str(run), "--n", "60", "--json", str(run / "eval.json")]) == 0
    out = tmp_path / "page.html"
    assert main(["report", str(run), "--n", "50", "--out", str(out)]) == 0
    assert f"From {run / 'eval.json'} (60 held-out points)" in out.read_text(encoding="utf-8")
    (run / "eval.json").write_text('{"rows": 3}')
    assert main(["report", str(run), *QUICK, "--out", str(tmp_path / "again.html")]) == 2
    line = error_line(capsys)
    assert str(run / "eval.json") in line and "no list 'rows'" in line
    assert not (tmp_path / "again.html").exists()


def test_report_shows_the_headline_draws_beside_the_table(run, tmp_path, capsys):
    heads = ["--rows", "heun:2", "--no-curve", "--draws", "2", "--n", "40"]
    assert main(["eval", str(run), *heads, "--json", str(run / "eval-draws.json")]) == 0
    out = tmp_path / "page.html"
    assert main(["report", str(run), *QUICK, "--out", str(out)]) == 0
    assert "headline rows over 2 independent draws" in out.read_text(encoding="utf-8")
    (run / "eval-draws.json").write_text("[]")
    assert main(["report", str(run), *QUICK, "--out", str(tmp_path / "again.html")]) == 2
    assert "eval-draws.json is not a table of flowmatch eval" in error_line(capsys)


def test_a_torn_metrics_line_is_one_warning(run, tmp_path, capsys):
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 99999, "lo')  # a kill or a full disk cut the last write short
    out = tmp_path / "page.html"
    assert main(["report", str(run), *QUICK, "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dropped 1 unreadable line" in err[0]
    assert "Step 20 of 20" in out.read_text(encoding="utf-8")


def test_bad_input_is_one_line_and_nothing_is_written(run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    other = tmp_path / "other"
    shutil.copytree(run, other)
    cases = [
        (["report", str(tmp_path / "missing")], "does not exist"),
        (["report", str(empty)], "not a flowmatch run"),
        (["report", str(broken)], "checkpoint"),
        (["report", str(run), "--out", str(tmp_path / "page.txt")], "must end in .html"),
        (["report", str(run), "--out", str(other / "report.html")], "inside the run folder"),
        (["report", str(run), "--out", str(run / "page.html")], "inside the run folder"),
        (["report", str(run), "--out", str(tmp_path / "no" / "r.html")], "does not exist"),
        (["report", str(run), "--n", "1"], "--n"),
        (["report", str(run), "--seed", "-1"], "seed"),
    ]
    before = {p: names(p) for p in (tmp_path, run, empty, broken, other)}
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        assert fragment in error_line(capsys), argv
    assert {p: names(p) for p in before} == before


def test_an_unwritable_folder_is_refused_before_any_work(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert main(["report", str(run), *QUICK, "--out", str(tmp_path / "r.html")]) == 2
    assert f"folder {tmp_path} is not writable" in error_line(capsys)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_full_disk_leaves_no_page_and_the_old_one_whole(run, monkeypatch, capsys, overwrite):
    def full(fd):  # the page is in its temporary file; making it durable fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from flowmatch.viz import report

    page = run / "report.html"
    if overwrite:
        page.write_text("the old report")
    before = names(run)
    monkeypatch.setattr(report, "build_report", lambda *args, **kwargs: "<p>a page</p>")
    monkeypatch.setattr(os, "fsync", full)
    argv = ["report", str(run), *QUICK, *(["--overwrite"] if overwrite else [])]
    assert main(argv) == 2
    line = error_line(capsys)
    assert f"cannot write {page}" in line and "no space left on the device" in line
    assert names(run) == before  # no temporary file left behind
    assert not overwrite or page.read_text() == "the old report"


def test_demo_ends_with_the_report(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(importlib.import_module("flowmatch.cli.main"), "run_command", calls.append)
    demo.run(argparse.Namespace(data="moons", steps=3, draws=2, out=tmp_path / "d"))
    assert [argv[0] for argv in calls] == ["train", "eval", "eval", "plot", "report"]
    assert calls[0][calls[0].index("--width") + 1] == str(demo.WIDTH)
    assert calls[1][-1] == str(tmp_path / "d" / "eval.json") and "--draws" not in calls[1]
    headline = calls[2]  # the two headline rows over --draws draws, beside the full table
    assert headline[headline.index("--draws") + 1] == "2"
    assert headline[headline.index("--rows") + 1] == demo.HEADLINE
    assert headline[-1] == str(tmp_path / "d" / "eval-draws.json")
    assert calls[-1] == ["report", str(tmp_path / "d")]
