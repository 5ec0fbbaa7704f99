"""The README's Python and command-line examples run exactly as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def block(section: str, lang: str) -> str:
    text = README.read_text()
    start = text.index(f"## {section}")
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, start)
    assert match, f"no {lang} block under '{section}'"
    return match.group(1)


def test_python_api_example_runs(tmp_path):
    code = block("Python API", "python")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1000, 2])" in result.stdout


def test_cli_example_runs(tmp_path):
    # the commands as written, on a smaller budget: fewer steps and held-out points
    script = block("Command line", "sh").replace("--steps 2000", "--steps 300")
    script = script.replace("eval $RUN", "eval $RUN --n 300").replace(
        "plot $RUN", "plot $RUN --n 300"
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "data floor" in result.stdout
