"""Progress bars (tqdm), quiet when output is not a terminal unless asked for."""

from __future__ import annotations

import os
import sys


def progress(iterable=None, *, total=None, desc=None, unit="it", disable=None, **kwargs):
    """A tqdm bar on stderr; disabled when ``REGKIT_NO_PROGRESS`` is set."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = False
    if os.environ.get("REGKIT_NO_PROGRESS"):
        disable = True
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
                dynamic_ncols=True, **kwargs)
