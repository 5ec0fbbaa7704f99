"""Imports point one way: interface -> workflows -> math -> data -> core, never back up.

Every top-level module or package of flowmatch belongs to one layer below. A module may import
from its own package, from packages of lower layers, and from other packages of its own layer
as long as the packages of a layer import each other without a cycle. Imports inside functions
count too: a lazy import is still a dependency. ``docs/dependency_graph.py`` draws the graph
these tests check (docs/dependency-graph.png).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "flowmatch"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("errors", "storage", "_version")),
    ("data", ("data", "paths", "couplings", "envs")),
    ("math", ("solvers", "models", "likelihood", "metrics", "flows")),
    ("workflows", ("training", "evaluation", "viz")),
    ("interface", ("cli", "__main__", "__init__")),
]
"""Layer name and the top-level names in it, from the bottom up."""

PURE_MATH = ("paths", "couplings", "solvers", "models", "likelihood", "metrics", "flows")
"""Packages that stay tensor code: no argument parsing, no plotting."""

LEVEL = {name: level for level, (_, names) in enumerate(LAYERS) for name in names}


def top_level(path: Path) -> str:
    """The top-level name a file of the package belongs to: 'cli', 'errors', '__init__', ..."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_modules(path: Path) -> list[str]:
    """Every ``flowmatch...`` module a file imports, at the top or inside functions."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    return modules


def import_graph() -> dict[str, dict[str, list[str]]]:
    """source top-level name -> {imported top-level name: [files importing it]}."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(PACKAGE.rglob("*.py")):
        source = top_level(path)
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "flowmatch":
                continue
            target = parts[1] if len(parts) > 1 else "__init__"
            if target != source:
                graph[source][target].append(str(path.relative_to(PACKAGE.parent)))
    return graph


def test_every_module_has_a_layer():
    unplaced = {top_level(p) for p in PACKAGE.rglob("*.py")} - set(LEVEL)
    assert not unplaced, f"place these in a layer of tests/test_layers.py: {sorted(unplaced)}"


def test_no_import_points_up():
    upward = [
        f"{source} ({LAYERS[LEVEL[source]][0]}) imports {target} ({LAYERS[LEVEL[target]][0]}) "
        f"in {', '.join(sorted(set(files)))}"
        for source, targets in import_graph().items()
        for target, files in targets.items()
        if source in LEVEL and target in LEVEL and LEVEL[target] > LEVEL[source]
    ]
    assert not upward, "\n".join(upward)


def test_packages_of_a_layer_import_each_other_without_a_cycle():
    graph = import_graph()
    for _, names in LAYERS:
        edges = {s: {t for t in graph.get(s, {}) if t in names} for s in names}
        done: set[str] = set()

        def visit(node: str, stack: list[str], edges=edges, done=done) -> None:
            if node in stack:
                raise AssertionError("import cycle: " + " -> ".join([*stack, node]))
            if node not in done:
                for nxt in sorted(edges[node]):
                    visit(nxt, [*stack, node])
                done.add(node)

        for name in names:
            visit(name, [])


def test_math_packages_parse_no_arguments_and_draw_nothing():
    offending = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for name in PURE_MATH
        for path in sorted((PACKAGE / name).rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in ("argparse", "matplotlib", "tqdm")
    ]
    assert not offending, "\n".join(offending)


def test_the_checks_catch_an_upward_import(tmp_path, monkeypatch):
    # the same checks on a package whose math layer imports the command line must fail
    fake = tmp_path / "flowmatch"
    for name in ("cli", "models"):
        (fake / name).mkdir(parents=True)
    (fake / "cli" / "__init__.py").write_text("from flowmatch.models import thing\n")
    (fake / "models" / "__init__.py").write_text("def f():\n    from flowmatch.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    try:
        test_no_import_points_up()
    except AssertionError as exc:
        assert "models (math) imports cli (interface)" in str(exc)
    else:
        raise AssertionError("an upward import went unnoticed")
