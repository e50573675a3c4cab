"""Writing files atomically: through a temporary file beside the target, renamed into place.

A reader never sees a half-written file, and a failure leaves the previous file (or none) and no temporary
file behind. The temporary name keeps the target's suffix (``.nii.gz``, ``.tfm``, ``.png``, ...), so writers
that choose the format by suffix work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    tmp = path.with_name(f".{path.name[: len(path.name) - len(suffix)]}.tmp{suffix}")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically, in UTF-8 whatever the locale (a DICOM writer can switch it to C)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
