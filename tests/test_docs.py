"""The examples of the README and of every page under docs/ run as written.

Fenced blocks carry one of four tags. ``python`` and ``sh`` blocks are run: on each page the
python blocks in order as one script, the sh blocks in order in one ``bash -euo pipefail``
session, each in a fresh folder, and each must exit 0, print what ``EXPECTED`` asks for and
use no deprecated spelling. ``console`` blocks are shown, not run (installs, ``make``, long
trainings), but each ``flowmatch`` command in them must parse with the real parser. ``text``
blocks are output. A block without one of these tags fails, so nothing is left out silently.

A page's script runs in its own process, forked from a server process that has imported
flowmatch once: importing torch costs seconds, the examples themselves little more.
"""

import multiprocessing
import os
import re
import runpy
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = ("python", "sh")
SHOWN = ("console", "text")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
TIMEOUT = 300  # seconds per session

# What each page's examples must print: properties of the output, not snapshots of it.
EXPECTED = {
    "README.md": ["torch.Size([1000, 2])", "data floor"],
    "docs/benchmarks.md": ["256 rows in blocks of 16:", "256 rows in blocks of 64:"],
    "docs/conditional.md": [
        "guided threes (16, 1, 8, 8)",
        "prompted sevens (8, 1, 8, 8) (2, 1, 8, 8)",
        "dict condition (4, 3080) (4, 64)",
        "refused: the condition['camera']: this model takes images of shape (3, 32, 32)",
        "(8, 20) success",
        "expert success 1.00, followed 1.00",
        "chunks (8, 20) (3, 20)",
        "error: this run's condition needs every part; give --part instruction=TEXT too",
    ],
    "docs/flow-matching.md": ["heun NFE 8: W2", "student samples (500, 2)"],
    "docs/index.md": ["NFE 8", "torch.Size([4]) torch.Size([4, 2])"],
    "docs/likelihood.md": ["Hutchinson", "(1000, 2) (1000,)", "CNF after 30 steps"],
    "docs/presets.md": ["saved: few-step ot 0 64", "few-step ot 0 uniform 64"],
    "docs/planar-flows.md": ["integrates an ODE: False", "KL", "torch.Size([5])"],
    "docs/theory.md": [
        "max |log-det - dt div v| / dt",
        "transport residual",
        "v* of one point: True",
    ],
    "docs/scale-out.md": ["on a new random stream", "done: step 80/80", "checkpoint.safetensors"],
    "docs/run-folders.md": ["checkpoint.safetensors", "60 (2,) 32", "t=0 is noise", "refused:"],
}

# Budget reductions for this test (old text, new text); each old text must occur on its page.
SUBSTITUTIONS = {
    "README.md": [("steps=500", "steps=200"), ("--steps 500", "--steps 200")],
}


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def blocks(page: Path) -> list[tuple[str, str]]:
    """The (tag, body) of every fenced block of a page, in order."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(page.read_text())]


def deprecations(stderr: str) -> list[str]:
    """The lines of flowmatch's deprecation warnings (old flag spellings, renamed methods)."""
    lines = stderr.splitlines()
    return [s for s in lines if "deprecated" in s and ("flowmatch" in s or "Flow" in s)]


def run_script(script: str, cwd: str, tmp: str) -> None:
    """In a process forked from the server: run ``script`` as ``__main__`` in ``cwd``."""
    for fd, name in ((1, "python.out"), (2, "python.err")):
        f = os.open(Path(tmp) / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(f, fd)
        os.close(f)
    os.chdir(cwd)
    os.environ.update(TMPDIR=tmp, MPLBACKEND="Agg")
    tempfile.tempdir = tmp  # tempfile.mkdtemp() stays inside the test's folder

    import torch

    torch.set_num_threads(1)
    sys.argv = [script]
    runpy.run_path(script, run_name="__main__")


def run_python(code: str, tmp: Path) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``code`` run as a script in a fresh folder."""
    (tmp / "python").mkdir()
    (tmp / "examples.py").write_text(code)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["flowmatch", __name__])
    process = context.Process(
        target=run_script, args=(str(tmp / "examples.py"), str(tmp / "python"), str(tmp))
    )
    process.start()
    process.join(TIMEOUT)
    if process.is_alive():
        process.kill()
        process.join()
    return process.exitcode, (tmp / "python.out").read_text(), (tmp / "python.err").read_text()


def run_sh(code: str, tmp: Path) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``code`` run by bash in a fresh folder."""
    (tmp / "sh").mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(tmp),  # mktemp stays inside the test's folder
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=tmp / "sh",
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return result.returncode, result.stdout, result.stderr


def test_every_page_is_tested():
    assert sorted(EXPECTED) == sorted(page_id(p) for p in PAGES)
    for page in PAGES:
        tags = [tag for tag, _ in blocks(page)]
        unmarked = [tag or "(none)" for tag in tags if tag not in RUN + SHOWN]
        assert not unmarked, f"{page_id(page)}: blocks need one of {RUN + SHOWN}: {unmarked}"
        assert any(tag in RUN for tag in tags), f"{page_id(page)} has no runnable example"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_examples_run(page, tmp_path):
    text = page.read_text()
    substitutions = SUBSTITUTIONS.get(page_id(page), [])
    for old, _ in substitutions:
        assert old in text, f"stale substitution for {page_id(page)}: {old!r}"
    output = ""
    for lang, run in (("python", run_python), ("sh", run_sh)):
        code = "\n".join(body for tag, body in blocks(page) if tag == lang)
        if not code:
            continue
        for old, new in substitutions:
            code = code.replace(old, new)
        status, stdout, stderr = run(code, tmp_path)
        assert status == 0, f"{lang} examples of {page_id(page)} (exit {status}):\n{stderr}"
        assert not deprecations(stderr), f"{page_id(page)} uses an old spelling:\n{stderr}"
        output += stdout
    for expected in EXPECTED[page_id(page)]:
        assert expected in output, f"{page_id(page)}: {expected!r} not in\n{output}"


def shown_commands() -> list[tuple[str, list[str]]]:
    """Every ``flowmatch`` command of a console block, as (page, argv without the program)."""
    commands = []
    for page in PAGES:
        for tag, body in blocks(page):
            if tag != "console":
                continue
            for line in body.replace("\\\n", " ").splitlines():
                command: list[str] = []
                for word in [*shlex.split(line, comments=True), "&&"]:
                    if word in ("&&", "||", ";", "|"):
                        if command[:1] == ["flowmatch"]:
                            commands.append((page_id(page), command[1:]))
                        elif (
                            "flowmatch" in command
                            and command[command.index("flowmatch") - 1] == "-m"
                        ):
                            # torchrun ... -m flowmatch ARGS
                            commands.append(
                                (page_id(page), command[command.index("flowmatch") + 1 :])
                            )
                        command = []
                    else:
                        command.append(word)
    return commands


def test_shown_commands_parse(capsys):
    from flowmatch import FlowmatchError
    from flowmatch.cli.main import build_parser

    parser = build_parser()
    commands = shown_commands()
    assert len(commands) > 20
    for page, argv in commands:
        shown = f"{page}: `flowmatch {shlex.join(argv)}`"
        try:
            parser.parse_args(argv)
        except (FlowmatchError, SystemExit) as exc:
            pytest.fail(f"{shown} does not parse: {exc}")
        assert not deprecations(capsys.readouterr().err), f"{shown} uses an old spelling"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_resolve():
    for page in PAGES:
        for target in LINK.findall(FENCE.sub("", page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page_id(page)}: broken link {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", FENCE.sub("", dest.read_text()), re.M)
                assert anchor in {slug(h) for h in headings}, f"{page_id(page)}: no #{anchor}"


def test_pictures_are_small():
    for page in PAGES:
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            assert (page.parent / target).stat().st_size < 200_000, target
