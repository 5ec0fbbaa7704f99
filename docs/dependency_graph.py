"""Draw flowmatch's import graph by layer into docs/dependency-graph.png.

The layers and the graph are those that tests/test_layers.py checks, so the picture shows what
the tests enforce: every arrow points down a layer or sideways within one, never up.

Usage: python docs/dependency_graph.py [OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_layers import LAYERS, LEVEL, import_graph  # noqa: E402


def draw(out: Path) -> Path:
    """Write the layered graph to ``out`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = import_graph()
    names = {name for _, layer in LAYERS for name in layer}
    pos = {}
    for level, (_, layer) in enumerate(LAYERS):
        shown = [n for n in layer if n in graph or any(n in t for t in graph.values())]
        for i, name in enumerate(shown):
            stagger = 0.06 * (level % 2)  # so that no arrow runs straight through a box
            pos[name] = ((i + 0.5) / len(shown) + stagger, level)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for source, targets in graph.items():
        for target in targets:
            if source not in pos or target not in pos or target not in names or target == "errors":
                continue  # every module may raise a FlowmatchError: those arrows are left out
            (x0, y0), (x1, y1) = pos[source], pos[target]
            same = y0 == y1
            ax.annotate(
                "",
                xy=(x1, y1 + (0 if same else 0.18)),
                xytext=(x0, y0 - (0 if same else 0.18)),
                zorder=1,
                arrowprops={
                    "arrowstyle": "->",
                    "color": "tab:orange" if same else "0.55",
                    "lw": 0.8,
                    "shrinkA": 18 if same else 0,
                    "shrinkB": 18 if same else 0,
                    "connectionstyle": "arc3,rad=0.35" if same else "arc3,rad=0.0",
                },
            )
    for name, (x, y) in pos.items():
        label = "flowmatch" if name == "__init__" else name
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=9,
            zorder=3,
            bbox={"boxstyle": "round,pad=0.35", "fc": "white", "ec": "0.3"},
        )
    for level, (layer, _) in enumerate(LAYERS):
        ax.text(-0.02, level, layer, ha="right", va="center", fontsize=10, style="italic")
    ax.set_xlim(-0.15, 1.08)
    ax.set_ylim(-0.5, len(LAYERS) - 0.5)
    ax.axis("off")
    ax.set_title(
        "flowmatch imports point down a layer, or sideways (orange) without a cycle\n"
        "(arrows into errors, which every layer uses, are left out)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dependency-graph.png"
    unknown = {n for n in import_graph() if n not in LEVEL}
    if unknown:
        sys.exit(f"not in any layer of tests/test_layers.py: {sorted(unknown)}")
    print(draw(target))
