"""Progress bars (tqdm), quiet when output is not a terminal unless asked for."""

from __future__ import annotations

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
