"""docs/theory.md names only functions and tests that exist.

The page maps each equation of the tutorial to the code that implements it (written
`flowmatch.module.name`) and to the test that checks it (written `tests/file.py::test_name`).
A rename or a deletion that leaves the page behind fails here.
"""

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "theory.md"
CODE = re.compile(r"`(flowmatch(?:\.\w+)+)`")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def resolve(dotted: str) -> object:
    """The object a dotted name stands for: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_function_named_on_the_page_exists():
    names = CODE.findall(PAGE.read_text())
    assert len(names) >= 15, "the page should map the tutorial's equations to code"
    missing = []
    for dotted in names:
        try:
            resolve(dotted)
        except (ModuleNotFoundError, AttributeError):
            missing.append(dotted)
    assert not missing, f"docs/theory.md names code that does not exist: {missing}"


def test_every_test_named_on_the_page_exists():
    refs = TEST.findall(PAGE.read_text())
    assert len(refs) >= 15, "the page should name the test of each equation"
    missing = []
    for file, name in refs:
        path = ROOT / file
        defined = set()
        if path.is_file():
            tree = ast.parse(path.read_text())
            defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/theory.md names tests that do not exist: {missing}"


def test_the_checks_catch_a_stale_name():
    assert CODE.findall("see `flowmatch.flows.no_such_thing`") == ["flowmatch.flows.no_such_thing"]
    try:
        resolve("flowmatch.flows.no_such_thing")
    except AttributeError:
        pass
    else:
        raise AssertionError("a missing name resolved")
