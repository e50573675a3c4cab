"""Errors that name the bad input and the fix."""

from __future__ import annotations

import os
import re
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


def check_whole(name: str, value, low: int = 1, *, optional: bool = False, fix: str | None = None,
                types: type | tuple[type, ...] = int) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is a whole number of at least ``low``.

    ``True``/``False`` are not whole numbers here; ``None`` passes when ``optional``. ``types`` says what counts
    as a whole number (e.g. ``(int, numpy.integer)``); ``fix`` replaces the default hint ``e.g. NAME=LOW``.
    """
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, types) or value < low:
        raise InputError(f"{name} must be a whole number of at least {low}, got {value!r}",
                         fix=fix or f"e.g. {name}={max(low, 1)}")


def check_path(name: str, value, *, optional: bool = False) -> Path | None:
    """``value`` as a :class:`~pathlib.Path`, or an :class:`InputError` naming ``name`` unless it is a path (text or
    ``os.PathLike``, not empty); ``None`` passes (and is returned) when ``optional``."""
    if optional and value is None:
        return None
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise InputError(f"{name} must be a path (text or a pathlib.Path), got {type(value).__name__} {value!r}"[:300],
                         fix=f"give {name} as a path, e.g. {name}='folder/file'")
    return Path(value)


class ConfigurationError(InputError):
    """A registrar cannot run with its options at all (e.g. elastix refuses its parameter map): the same for every
    sample, so a comparison stops at the first one instead of recording every sample as failed. A registrar raises
    it from ``register``; :class:`~regkit.registrar.RegistrarBase` passes it on instead of recording a failure."""


class CheckpointError(InputError):
    """A checkpoint that is damaged or belongs to another architecture."""


class FolderInUseError(RegkitError):
    """Another run holds the folder's lock (see :mod:`regkit.lock`); the message names it."""


class OutputError(RegkitError, OSError):
    """An output could not be written (disk full, read-only, a file-size limit): what was written is kept.

    An ``OSError`` too, so code that catches file-system errors still does.
    """


def itk_message(exc: Exception) -> str:
    """The useful part of an ITK/SimpleITK exception: its "ITK ERROR: Class(0x...): message" line (and the next,
    unless it starts a list of registered types), without the source location and object address."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "ITK ERROR" in line:
            reason = re.sub(r"^.*?ITK ERROR:\s*\w+\(0x[0-9a-fA-F]+\):\s*", "", line)
            more = [x for x in lines[i + 1:i + 2] if not x.startswith(('"', "Currently", "The usual cause"))]
            return " ".join([reason, *more])
    return lines[-1] if lines else "unknown reason"
