"""Shared helpers of the command-line tests."""

from __future__ import annotations


def error_line(capsys) -> str:
    """The single stderr line of a rejected command; checks there is exactly one."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("flowmatch: error: ")
    return err[0]
