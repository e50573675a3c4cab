"""Errors that name the bad input and the fix."""

from __future__ import annotations

from pathlib import Path


class RegkitError(Exception):
    """Base class of every error regkit raises on purpose."""


class InputError(RegkitError, ValueError):
    """Bad user input: a file, a transform, a label or an option.

    Parameters
    ----------
    what : str
        The problem, in one sentence.
    path : path-like, optional
        The file the problem is in.
    fix : str, optional
        What the user can do about it.
    """

    def __init__(self, what: str, path: str | Path | None = None, fix: str | None = None):
        self.what = what
        self.path = None if path is None else Path(path)
        self.fix = fix
        parts = [f"{self.path}: {what}" if self.path is not None else what]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class CheckpointError(InputError):
    """A checkpoint that is damaged or belongs to another architecture."""
