"""The release of flowmatch, kept apart so that every module can read it without a cycle."""

__version__ = "0.1.0"
