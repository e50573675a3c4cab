"""What a long step is doing, on stderr: progress bars (tqdm), one-line notes, and the slow imports announced.

``REGKIT_NO_PROGRESS`` (set in worker processes) silences all of it.
"""

from __future__ import annotations

import importlib.abc
import os
import sys


def progress(iterable=None, *, total=None, desc=None, unit="it", disable=None, **kwargs):
    """A tqdm bar on stderr; disabled when ``REGKIT_NO_PROGRESS`` is set, and when there is nothing to do (no
    empty ``0 case`` bar for work already done)."""
    from tqdm.auto import tqdm

    size = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    if disable is None:
        disable = False
    if os.environ.get("REGKIT_NO_PROGRESS") or size == 0:
        disable = True
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
                dynamic_ncols=True, **kwargs)


def note(message: str, disable: bool = False) -> None:
    """One line on stderr saying what a step that shows nothing for seconds is doing; silent when ``disable``
    or ``REGKIT_NO_PROGRESS`` is set."""
    if not disable and not os.environ.get("REGKIT_NO_PROGRESS"):
        print(message, file=sys.stderr, flush=True)


#: Imports slow enough to announce: what loads, and about how many seconds it takes on a quiet 2-core machine
#: (``bench/startup.py``).
SLOW_IMPORTS = {"itk": ("ITK and elastix", 2), "torch": ("torch", 2)}


class _SlowImportNote(importlib.abc.MetaPathFinder):
    """Notes each of :data:`SLOW_IMPORTS` as its first import starts (it finds nothing itself)."""

    def __init__(self):
        self.pending = set(SLOW_IMPORTS)

    def find_spec(self, name, path=None, target=None):
        if name in self.pending:
            self.pending.discard(name)
            what, seconds = SLOW_IMPORTS[name]
            note(f"loading {what} (about {seconds} s, once per process)...")
        return None


def note_slow_imports() -> None:
    """From now on in this process, say on stderr when ITK or torch starts to load (the ``regkit`` command does
    this; ``regkit compare``'s workers, which set ``REGKIT_NO_PROGRESS``, stay silent)."""
    if not any(isinstance(finder, _SlowImportNote) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SlowImportNote())
