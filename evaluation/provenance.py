"""The reproducibility record written beside every result."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RUN_FORMAT = 1  # the version of run.json's layout ("regkit_run"; a record from before it was stated has none)
RUN_FIELDS = {"regkit_run": int, "methods": list, "cases": list, "dataset": (str, None), "split": (str, None),
              "starts_per_case": int, "seeds": dict, "statistics": dict}
# a method's settings: an object, or for a chain a list of its members' (registry.resolved_settings)
METHOD_FIELDS = {"label": str, "registrar": str, "options": dict, "settings": (dict, list, None)}
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
        "regkit_run": RUN_FORMAT,
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


def read_record(path: str | Path) -> dict:
    """The run record ``run.json`` at ``path``, checked (see :mod:`regkit.records`): a JSON object of format
    :data:`RUN_FORMAT`, whose ``methods`` are objects with a textual ``label`` and ``registrar``, an ``options``
    object and a ``settings`` object (a list of them for a chain, or null)."""
    from regkit.errors import InputError
    from regkit.records import check_fields, read_json

    fix = "move run.json away (the results are kept in results.csv) and run again, or use a new output folder"
    doc = read_json(path, "run record", RUN_FIELDS, version_key="regkit_run", version=RUN_FORMAT, fix=fix)
    for i, method in enumerate(doc.get("methods", [])):
        if not isinstance(method, dict):
            raise InputError(f"the run record's methods[{i}] must be an object, got {method!r}"[:200], path, fix)
        check_fields(method, METHOD_FIELDS, f"run record's methods[{i}]", path)
        if isinstance(method.get("settings"), list) and not all(isinstance(m, dict) for m in method["settings"]):
            raise InputError(f"the run record's methods[{i}]'s 'settings' must be an object, a list of objects (a "
                             f"chain's members') or null, got {method['settings']!r}"[:300], path, fix)
        missing = [k for k in ("label", "registrar", "options") if k not in method]
        if missing:
            raise InputError(f"the run record's methods[{i}] has no {', '.join(map(repr, missing))}", path, fix)
    return doc
