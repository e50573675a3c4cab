"""The reproducibility record written beside every result."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("regkit", "numpy", "scipy", "pandas", "SimpleITK", "itk-elastix", "itk", "torch", "scikit-image",
            "statsmodels", "click", "dask", "distributed")


def package_versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def git_hash(path: Path | None = None) -> str | None:
    """The git commit of the regkit source tree (with ``-dirty`` when modified), if it is a checkout."""
    root = path or Path(__file__).resolve().parents[1]
    try:
        h = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=5)
        if h.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return h.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def record(**facts) -> dict:
    """Versions, platform, threads, git hash and the command line, plus the caller's ``facts``."""
    try:
        import torch

        torch_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        torch_threads = None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "cwd": os.getcwd(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch_threads,
        "itk_threader": os.environ.get("ITK_GLOBAL_DEFAULT_THREADER"),
        "git": git_hash(),
        "packages": package_versions(),
        **facts,
    }
