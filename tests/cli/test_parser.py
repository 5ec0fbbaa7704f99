"""The command line's parser alone: the registry, help, version, flag names and renames."""

import subprocess
import sys

import pytest

from flowmatch.cli import build_parser, main
from flowmatch.cli.main import COMMANDS
from flowmatch.cli.train import config_fields, flag_name
from flowmatch.errors import FlowmatchError
from flowmatch.solvers import SOLVERS
from tests.cli.helpers import error_line

SOLVER_STEPS_COMMANDS = ["sample", "invert", "plot", "logprob", "eval-images", "reflow", "distill"]
REQUIRED = {  # the least each subcommand parses with
    "sample": ["RUN"],
    "invert": ["RUN", "--data", "x.npy", "--out", "z.npy"],
    "plot": ["RUN"],
    "logprob": ["RUN", "--data", "moons"],
    "eval-images": ["RUN"],
    "reflow": ["RUN", "--out", "NEW"],
    "distill": ["RUN", "--out", "NEW"],
}


def test_python_m_flowmatch_prints_the_version():
    import flowmatch

    result = subprocess.run(
        [sys.executable, "-m", "flowmatch", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"flowmatch {flowmatch.__version__}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: flowmatch {command} ")
    assert ("[--steps " in out) == (command in ("train", "fit-energy", "demo"))  # optimizer


def test_the_registry_is_what_help_lists(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "{" + ",".join(COMMANDS) + "}" in out


@pytest.mark.parametrize("command", SOLVER_STEPS_COMMANDS)
def test_old_steps_spelling_sets_solver_steps_and_warns_once(command, capsys):
    args = build_parser().parse_args([command, *REQUIRED[command], "--steps", "7"])
    assert args.solver_steps == 7 and not hasattr(args, "steps")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"flowmatch: warning: --steps of 'flowmatch {command}' is deprecated and will be "
        "removed; use --solver-steps (--steps counts optimizer steps in train)"
    ]
    args = build_parser().parse_args([command, *REQUIRED[command], "--solver-steps", "7"])
    assert args.solver_steps == 7 and capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["reflow", "distill"])
def test_old_pairs_spelling_sets_n_pairs_and_warns_once(command, capsys):
    args = build_parser().parse_args([command, "RUN", "--out", "NEW", "--pairs", "30"])
    assert args.n_pairs == 30 and not hasattr(args, "pairs")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"flowmatch: warning: --pairs of 'flowmatch {command}' is deprecated and will be "
        "removed; use --n-pairs (--pairs names a pairs file in train)"
    ]


@pytest.mark.parametrize(
    "command, flags",
    [
        ("sample", ["--steps", "7", "--solver-steps", "8"]),
        ("sample", ["--solver-steps", "50", "--steps", "50"]),  # even with the default value
        ("reflow", ["--n-pairs", "10", "--pairs", "20"]),
        ("distill", ["--pairs", "10", "--n-pairs", "10"]),
    ],
)
def test_old_and_new_spelling_together_are_one_error(command, flags, capsys):
    argv = [command, *REQUIRED[command], *flags]
    assert main(argv) == 2
    line = error_line(capsys)  # one line, and no warning before it
    assert "is the old spelling of" in line and f"flowmatch {command} --help" in line


def test_no_warning_when_the_command_line_is_refused(capsys):
    assert main(["sample", "RUN", "--steps", "3", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in error_line(capsys)  # the only line


@pytest.mark.parametrize("command", ["train", "fit-energy", "demo"])
def test_steps_still_counts_optimizer_steps_without_a_warning(command, capsys):
    argv = {"train": ["train"], "fit-energy": ["fit-energy", "U1", "--out", "R"]}
    args = build_parser().parse_args([*argv.get(command, [command]), "--steps", "9"])
    assert args.steps == 9 and capsys.readouterr().err == ""


def test_train_pairs_is_still_a_file():
    args = build_parser().parse_args(["train", "--pairs", "pairs.npz"])
    assert args.pairs == "pairs.npz"


@pytest.mark.parametrize("command", [*SOLVER_STEPS_COMMANDS, "eval"])
def test_solver_flags_offer_exactly_the_registered_solvers(command):
    fixed = [name for name, spec in SOLVERS.items() if not spec.adaptive]
    flag = "--curve-solver" if command == "eval" else "--solver"
    allowed = fixed if command in ("eval", "eval-images") else list(SOLVERS)
    assert 0 < len(fixed) < len(SOLVERS)
    for name in SOLVERS:
        argv = [command, *REQUIRED.get(command, ["RUN"]), flag, name]
        if name in allowed:
            build_parser().parse_args(argv)
        else:
            with pytest.raises(FlowmatchError, match=f"invalid choice: '{name}'"):
                build_parser().parse_args(argv)


def test_every_config_field_has_a_train_flag_with_its_help(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "2000")  # no wrapping inside a flag's help
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out.split("\n  -")  # one entry per flag
    for field in config_fields():
        text = field.metadata.get("help")
        assert text, f"{field.name} has no help metadata"
        flag = flag_name(field.name)[1:]  # e.g. "-lr" after the split; booleans: "-x, --no-x"
        entry = [e for e in out if e.startswith((flag + " ", flag + ","))]
        assert len(entry) == 1 and text in entry[0], field.name


def test_train_flags_parse_into_config_fields_and_stay_unset_otherwise():
    args = build_parser().parse_args(["train", "--model", "unet", "--no-standardize", "--lr", "1"])
    given = {f.name: getattr(args, f.name) for f in config_fields()}
    assert {k: v for k, v in given.items() if v is not None} == {
        "name": "unet",
        "standardize": False,
        "lr": 1.0,
    }
